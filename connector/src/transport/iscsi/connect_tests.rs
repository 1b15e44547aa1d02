//! Unit tests of [`IscsiConnector::connect`] and [`IscsiConnector::disconnect`] on
//! kernel-shaped fixture trees: [`Scripted`] handlers change the tree as the kernel
//! would (login creates the session, scan the SCSI device, delete removes it) and
//! [`ScriptedEvents`] steps finish what sd and udev do asynchronously.

use super::*;
use crate::exec::{DryRun, Scripted, exec_reply};
use crate::host::fixture::{Tree, by_id_links};
use crate::host::udev::ScriptedEvents;
use crate::transport::iscsi::test_support::*;
use serde_json::{Value, json};

fn connector<'a>(
    env: &Env,
    privileged: &'a dyn Privileged,
    events: &'a dyn DeviceEvents,
    timeout: Duration,
) -> IscsiConnector<'a> {
    connector_with(env, privileged, events, timeout)
}

const SECRET: &str = "Pa55-w0rd-one";
const SECRET_IN: &str = "Pa55-w0rd-two";

fn single(lun: Value) -> IscsiProps {
    props(json!({"target_portal": PORTAL, "target_iqn": IQN, "target_lun": lun}))
}

fn exit_err(code: i32, stderr: &str) -> Result<Value, PrivError> {
    Ok(exec_reply(code, "", stderr))
}

fn node(iqn: &str, portal: &str) -> Value {
    json!({"iqn": iqn, "portal": portal})
}

fn update(iqn: &str, portal: &str, name: &str, value: &str) -> Value {
    json!({"iqn": iqn, "portal": portal, "name": name, "value": value})
}

fn op_names(s: &Scripted) -> Vec<String> {
    s.calls().into_iter().map(|(op, _)| op).collect()
}

/// moord's answer to `iscsi.node_configure` when there is no record to write.
fn not_found() -> Result<Value, PrivError> {
    Err(PrivError::Refused {
        op: "iscsi.node_configure",
        code: "not_found".into(),
        message: "no node record for the target".into(),
    })
}

/// The CHAP settings of a test volume (`user1`/[`SECRET`], mutual
/// `tgtuser`/[`SECRET_IN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    Chap,
    Mutual,
}

/// The `iscsi.node_configure` arguments of an attach to `iqn`@`portal`: manual
/// scanning, the login bounds, restored at boot, [the multipath replacement
/// timeout], then the CHAP settings; the passwords only in their own fields.
fn configure_args(iqn: &str, portal: &str, multipath: bool, auth: Auth) -> Value {
    let mut settings = vec![
        ["node.session.scan", "manual"],
        ["node.conn[0].timeo.login_timeout", "10"],
        ["node.session.initial_login_retry_max", "2"],
        ["node.startup", "automatic"],
        ["node.conn[0].startup", "automatic"],
    ];
    if multipath {
        settings.push(["node.session.timeo.replacement_timeout", "5"]);
    }
    match auth {
        Auth::None => settings.push(["node.session.auth.authmethod", "None"]),
        Auth::Chap | Auth::Mutual => settings.extend([
            ["node.session.auth.authmethod", "CHAP"],
            ["node.session.auth.username", "user1"],
            // One-way CHAP: target credentials of an earlier mutual attach are cleared.
            [
                "node.session.auth.username_in",
                if auth == Auth::Mutual { "tgtuser" } else { "" },
            ],
        ]),
    }
    let mut args = json!({"iqn": iqn, "portal": portal, "iface": "default", "settings": settings});
    if auth != Auth::None {
        args["password"] = json!(SECRET);
    }
    if auth == Auth::Mutual {
        args["password_in"] = json!(SECRET_IN);
    }
    args
}

/// `p` expecting ensure_node: one `iscsi.node_configure` of an existing record,
/// or (`create`) one answered `not_found`, the record created, and configured.
fn expect_node_setup(p: Scripted, create: bool) -> Scripted {
    if create {
        p.expect("iscsi.node_configure", |_| not_found())
            .expect("iscsi.node_new", |_| exit(0))
            .expect("iscsi.node_configure", |_| done())
    } else {
        p.expect("iscsi.node_configure", |_| done())
    }
}

/// The calls of [`expect_node_setup`] writing `configure` (see [`configure_args`]).
fn setup_calls(configure: Value, create: bool) -> Vec<(String, Value)> {
    let mut calls = vec![call("iscsi.node_configure", configure.clone())];
    if create {
        calls.push(call(
            "iscsi.node_new",
            json!({"iqn": configure["iqn"], "portal": configure["portal"], "iface": "default"}),
        ));
        calls.push(call("iscsi.node_configure", configure));
    }
    calls
}

/// The calls of [`expect_node_setup`] for a single-path attach without CHAP.
fn node_setup_calls(iqn: &str, portal: &str, create: bool) -> Vec<(String, Value)> {
    setup_calls(configure_args(iqn, portal, false, Auth::None), create)
}

/// The calls of [`expect_node_setup`] for a multipath attach: one more bound, a
/// dead path handed to dm-multipath after 5 s.
fn mp_node_setup_calls(iqn: &str, portal: &str, create: bool) -> Vec<(String, Value)> {
    setup_calls(configure_args(iqn, portal, true, Auth::None), create)
}

/// `node.startup` (and the connection's) back to manual in the record of
/// `iqn`@`portal`, written by moord: no passwords, nothing else.
fn startup_manual_call(iqn: &str, portal: &str) -> (String, Value) {
    call(
        "iscsi.node_configure",
        json!({"iqn": iqn, "portal": portal, "iface": "default", "settings": [
            ["node.startup", "manual"],
            ["node.conn[0].startup", "manual"],
        ]}),
    )
}

/// The calls of undoing a login to `iqn`@`portal` whose session has no disk: log
/// out, then delete the record if the attach created it, else stop restoring the
/// session at boot.
fn undo_calls(iqn: &str, portal: &str, created: bool) -> Vec<(String, Value)> {
    vec![
        call("iscsi.logout", node(iqn, portal)),
        if created {
            call("iscsi.node_delete", node(iqn, portal))
        } else {
            startup_manual_call(iqn, portal)
        },
    ]
}

fn info(wwn: &str) -> DeviceInfo {
    DeviceInfo {
        kind: "block".into(),
        path: "/dev/sdb".into(),
        scsi_wwn: wwn.into(),
        multipath_id: None,
        devices: vec![],
        encryption: None,
    }
}

/// Events of sd and udev finishing a new disk `name` at `h`: block device, WWID,
/// udev database/node/links. A fourth, no-op step must stay unused.
fn disk_events(t: &Tree, h: Hctl, name: &'static str, devnum: &'static str) -> ScriptedEvents {
    let (t1, t2, t3) = (t.clone(), t.clone(), t.clone());
    ScriptedEvents::new()
        .then(move || t1.add_block(h, name, devnum))
        .then(move || t2.set_wwid(h, RAW))
        .then(move || t3.udev_add(name, devnum, &by_id_links(RAW)))
        .then(|| {})
}

/// The volume attached: session 1 on host 3 (target 3:0:0) with LUN 1 = sdb.
fn attached(t: &Tree) -> Hctl {
    t.add_session(1, 3, IQN, ADDR, 3260, 0);
    let h = hctl("3:0:0:1");
    t.add_lun(1, h, "sdb", "8:16", RAW);
    h
}

// ---------------------------------------------------------------------------
// connect

/// Scenario 1: no session, no node record.
#[test]
fn connect_single_path_logs_in_and_scans_exactly_the_lun() {
    let env = setup();
    let (t1, t2) = (env.tree.clone(), env.tree.clone());
    let h = hctl("5:0:3:1");
    let p = Scripted::new()
        // No record yet: moord has nothing to write into.
        .expect("iscsi.node_configure", |_| not_found())
        .expect("iscsi.node_new", |_| exit(0))
        .expect("iscsi.node_configure", |_| done())
        .expect("iscsi.login", move |_| {
            // The kernel: host5, session 1, target id 3, no target scanned (manual).
            t1.add_session(1, 5, IQN, ADDR, 3260, 3);
            exit(0)
        })
        .expect("scsi.scan", move |_| {
            t2.add_scsi_device(1, h);
            done()
        });
    let events = disk_events(&env.tree, h, "sdc", "8:32");
    let c = connector(&env, &p, &events, LONG);
    let dev = c.connect(&single(json!(1))).unwrap();
    assert_eq!(
        dev,
        DeviceInfo {
            kind: "block".into(),
            path: "/dev/sdc".into(),
            scsi_wwn: WWN.into(),
            multipath_id: None,
            devices: vec!["sdc 5:0:3:1".into()],
            encryption: None,
        }
    );
    // Every setting in one step, in this order; no passwords without CHAP.
    let configure = json!({
        "iqn": IQN, "portal": PORTAL, "iface": "default",
        "settings": [
            ["node.session.scan", "manual"],
            ["node.conn[0].timeo.login_timeout", "10"],
            ["node.session.initial_login_retry_max", "2"],
            ["node.startup", "automatic"],
            ["node.conn[0].startup", "automatic"],
            ["node.session.auth.authmethod", "None"],
        ],
    });
    assert_eq!(configure, configure_args(IQN, PORTAL, false, Auth::None));
    assert_eq!(
        p.calls(),
        [
            call("iscsi.node_configure", configure.clone()),
            call(
                "iscsi.node_new",
                json!({"iqn": IQN, "portal": PORTAL, "iface": "default"})
            ),
            call("iscsi.node_configure", configure),
            call("iscsi.login", node(IQN, PORTAL)),
            call(
                "scsi.scan",
                json!({"host": 5, "channel": 0, "target": 3, "lun": 1})
            ),
        ]
    );
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert_eq!(events.steps_run(), 3);
    assert_eq!(events.remaining(), 1);
}

/// An existing node record is configured in one step: no lookup, no node_new,
/// nothing written after the login.
#[test]
fn connect_existing_record_is_configured_once() {
    let env = setup();
    let (t1, t2) = (env.tree.clone(), env.tree.clone());
    let h = hctl("5:0:0:1");
    let p = Scripted::new()
        .expect("iscsi.node_configure", |_| done())
        .expect("iscsi.login", move |_| {
            t1.add_session(1, 5, IQN, ADDR, 3260, 0);
            exit(0)
        })
        .expect("scsi.scan", move |_| {
            t2.add_scsi_device(1, h);
            done()
        });
    let events = disk_events(&env.tree, h, "sdb", "8:16");
    let dev = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap();
    assert_eq!(dev.path, "/dev/sdb");
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    let mut want = node_setup_calls(IQN, PORTAL, false);
    want.extend([
        call("iscsi.login", node(IQN, PORTAL)),
        call(
            "scsi.scan",
            json!({"host": 5, "channel": 0, "target": 0, "lun": 1}),
        ),
    ]);
    assert_eq!(p.calls(), want);
    assert_eq!(
        op_names(&p)
            .iter()
            .filter(|o| *o == "iscsi.node_configure")
            .count(),
        1
    );
    assert!(!op_names(&p).contains(&"iscsi.node_new".to_string()));
}

/// The record this attach created cannot be configured: it is deleted again (a
/// record without manual scanning and the login bounds must not stay), the error
/// names the target, and no login is tried.
#[test]
fn connect_failed_configure_of_a_new_record_deletes_it() {
    let env = setup();
    let before = env.tree.snapshot();
    let p = Scripted::new()
        .expect("iscsi.node_configure", |_| not_found())
        .expect("iscsi.node_new", |_| exit(0))
        .expect("iscsi.node_configure", |_| {
            Err(PrivError::Refused {
                op: "iscsi.node_configure",
                code: "io".into(),
                message: "rename failed".into(),
            })
        })
        .expect("iscsi.node_delete", |_| exit(0));
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap_err();
    let IscsiError::Target { target, message } = &err else {
        panic!("expected a target error, got {err:?}");
    };
    assert_eq!(target, &format!("{IQN}@{PORTAL}"));
    assert!(
        message.contains("configuring the node record failed"),
        "{err}"
    );
    assert!(message.contains("rename failed"), "{err}");
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    let mut want = node_setup_calls(IQN, PORTAL, true);
    want.push(call("iscsi.node_delete", node(IQN, PORTAL)));
    assert_eq!(p.calls(), want);
    assert_eq!(events.watches_opened(), 0);
    assert_eq!(env.tree.snapshot(), before);
}

/// moord refuses to configure an existing record (any answer but `not_found`):
/// the error is returned at once; no record is created, deleted or logged in to.
#[test]
fn connect_refused_configure_creates_nothing() {
    let env = setup();
    let p = Scripted::new().expect("iscsi.node_configure", |_| {
        Err(PrivError::Refused {
            op: "iscsi.node_configure",
            code: "denied".into(),
            message: "no filter allows node.session.scan".into(),
        })
    });
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap_err();
    assert!(
        matches!(&err, IscsiError::Privileged(PrivError::Refused { code, .. }) if code == "denied"),
        "{err:?}"
    );
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert_eq!(p.calls(), node_setup_calls(IQN, PORTAL, false));
}

/// Scenario 2: CHAP and mutual CHAP; passwords only ever in node_configure's
/// `password` / `password_in` fields.
#[test]
fn connect_chap_secrets_only_in_node_configure_password_fields() {
    for mutual in [false, true] {
        let env = setup();
        let (t1, t2) = (env.tree.clone(), env.tree.clone());
        let h = hctl("5:0:0:1");
        // An existing record: no node_new.
        let p = expect_node_setup(Scripted::new(), false)
            .expect("iscsi.login", move |_| {
                t1.add_session(1, 5, IQN, ADDR, 3260, 0);
                exit(0)
            })
            .expect("scsi.scan", move |_| {
                t2.add_scsi_device(1, h);
                done()
            });
        let mut v = json!({
            "target_portal": PORTAL, "target_iqn": IQN, "target_lun": 1,
            "auth_method": "CHAP", "auth_username": "user1", "auth_password": SECRET,
        });
        if mutual {
            v["auth_username_in"] = json!("tgtuser");
            v["auth_password_in"] = json!(SECRET_IN);
        }
        let events = disk_events(&env.tree, h, "sdb", "8:16");
        let c = connector(&env, &p, &events, LONG);
        assert_eq!(c.connect(&props(v)).unwrap().path, "/dev/sdb");
        assert!(p.unused().is_empty(), "{:?}", p.unused());

        let calls = p.calls();
        let auth = if mutual { Auth::Mutual } else { Auth::Chap };
        let mut want = setup_calls(configure_args(IQN, PORTAL, false, auth), false);
        want.extend([
            call("iscsi.login", node(IQN, PORTAL)),
            call(
                "scsi.scan",
                json!({"host": 5, "channel": 0, "target": 0, "lun": 1}),
            ),
        ]);
        assert_eq!(calls, want, "mutual={mutual}");
        // The passwords travel in their own fields of node_configure…
        let configure = &calls[0].1;
        assert_eq!(configure["password"], json!(SECRET), "mutual={mutual}");
        if mutual {
            assert_eq!(configure["password_in"], json!(SECRET_IN));
        } else {
            assert!(configure.get("password_in").is_none(), "{configure}");
        }
        // … and nowhere else: not in its settings, not in any other operation.
        for (op, args) in &calls {
            let mut args = args.clone();
            if op == "iscsi.node_configure"
                && let Some(fields) = args.as_object_mut()
            {
                fields.remove("password");
                fields.remove("password_in");
            }
            let text = args.to_string();
            assert!(
                !text.contains(SECRET) && !text.contains(SECRET_IN),
                "{op} {text}"
            );
        }
        let names = op_names(&p);
        assert!(
            !names.contains(&"iscsi.node_secret".to_string()),
            "{names:?}"
        );
        assert!(
            !names.contains(&"iscsi.node_update".to_string()),
            "{names:?}"
        );
    }
}

/// Scenario 3: the target refuses the CHAP credentials.
#[test]
fn connect_auth_failure_deletes_the_record_it_created() {
    let env = setup();
    let p = expect_node_setup(Scripted::new(), true)
        .expect("iscsi.login", |_| {
            exit_err(24, "iscsiadm: Login failed due to authorization failure\n")
        })
        // Undo: no session to log out of (iscsiadm: no matching sessions).
        .expect("iscsi.logout", |_| exit(21))
        .expect("iscsi.node_delete", |_| exit(0));
    let events = ScriptedEvents::new();
    let c = connector(&env, &p, &events, LONG);
    let v = json!({
        "target_portal": PORTAL, "target_iqn": IQN, "target_lun": 1,
        "auth_method": "CHAP", "auth_username": "user1", "auth_password": SECRET,
    });
    let err = c.connect(&props(v)).unwrap_err();
    match &err {
        IscsiError::Login { target, auth, .. } => {
            assert!(*auth, "{err}");
            assert_eq!(target, &format!("{IQN}@{PORTAL}"));
        }
        other => panic!("expected a login error, got {other:?}"),
    }
    assert!(
        err.to_string().contains("refused the CHAP credentials"),
        "{err}"
    );
    assert!(!err.to_string().contains(SECRET), "{err}");
    let mut want = setup_calls(configure_args(IQN, PORTAL, false, Auth::Chap), true);
    want.push(call("iscsi.login", node(IQN, PORTAL)));
    want.extend(undo_calls(IQN, PORTAL, true));
    assert_eq!(p.calls(), want);
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert_eq!(events.watches_opened(), 0);
}

/// A record that existed before the attach is not deleted when login fails.
#[test]
fn connect_login_failure_keeps_a_record_it_did_not_create() {
    let env = setup();
    let p = expect_node_setup(Scripted::new(), false)
        .expect("iscsi.login", |_| exit_err(8, "iscsiadm: timed out\n"))
        // Undo: log out (cancels a login iscsid may still retry); the record stays
        // but no longer logs in at boot.
        .expect("iscsi.logout", |_| exit(21))
        .expect("iscsi.node_configure", |_| done());
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap_err();
    assert!(
        matches!(err, IscsiError::Login { auth: false, .. }),
        "{err:?}"
    );
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    let mut want = node_setup_calls(IQN, PORTAL, false);
    want.extend([call("iscsi.login", node(IQN, PORTAL))]);
    want.extend(undo_calls(IQN, PORTAL, false));
    assert_eq!(p.calls(), want);
    assert!(!op_names(&p).contains(&"iscsi.node_delete".to_string()));
}

/// Scenario 4: a session to the target exists (another volume's LUN 0 on it).
#[test]
fn connect_reuses_a_shared_session_and_only_scans() {
    let env = setup();
    let t = &env.tree;
    t.add_session(2, 4, IQN, ADDR, 3260, 0);
    // Another volume's LUN 0 on target 4:0:7 (target taken from the existing dir).
    t.add_lun(2, hctl("4:0:7:0"), "sda", "8:0", OTHER_RAW);
    let h = hctl("4:0:7:1");
    let t1 = t.clone();
    let p = Scripted::new().expect("scsi.scan", move |_| {
        t1.add_scsi_device(2, h);
        done()
    });
    let events = disk_events(t, h, "sdb", "8:16");
    let dev = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap();
    assert_eq!(dev.path, "/dev/sdb");
    assert_eq!(dev.scsi_wwn, WWN);
    assert_eq!(
        p.calls(),
        [call(
            "scsi.scan",
            json!({"host": 4, "channel": 0, "target": 7, "lun": 1})
        )]
    );
}

/// Scenario 5a: the LUN is already attached with the same WWID.
#[test]
fn connect_existing_lun_with_same_wwid_is_returned_without_scan() {
    let env = setup();
    attached(&env.tree);
    let p = Scripted::new().expect("scsi.rescan", |_| done());
    let events = ScriptedEvents::new();
    let dev = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap();
    assert_eq!(dev.path, "/dev/sdb");
    assert_eq!(dev.scsi_wwn, WWN);
    assert_eq!(
        p.calls(),
        [call(
            "scsi.rescan",
            json!({"device": "sdb", "expected_wwid": WWN})
        )]
    );
    assert_eq!(events.watches_opened(), 0);
}

/// Scenario 5b: a stale device of another volume sits at the LUN (CVE-2023-2088).
#[test]
fn connect_refuses_a_stale_device_at_the_lun() {
    // The rescan re-reads VPD 0x83 and the WWID changes…
    let env = setup();
    let h = attached(&env.tree);
    let t = env.tree.clone();
    let p = Scripted::new().expect("scsi.rescan", move |_| {
        t.set_wwid(h, OTHER_RAW);
        done()
    });
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IscsiError::Target { .. }), "{err:?}");
    assert!(msg.contains("stale device /dev/sdb"), "{msg}");
    assert!(msg.contains(&format!("from {WWN} to {OTHER_WWN}")), "{msg}");
    assert_eq!(op_names(&p), ["scsi.rescan"]);

    // … or moord's own identity check refuses the rescan.
    let env = setup();
    attached(&env.tree);
    let p = Scripted::new().expect("scsi.rescan", |_| {
        Err(PrivError::IdentityMismatch {
            op: "scsi.rescan",
            message: "sdb now has WWID 3600a0980383044…beef".into(),
        })
    });
    let err = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IscsiError::Target { .. }), "{err:?}");
    assert!(msg.contains("stale device /dev/sdb"), "{msg}");
    assert!(msg.contains("refusing to hand it out"), "{msg}");
    assert_eq!(op_names(&p), ["scsi.rescan"]);
}

/// Scenario 6: logged in, but the target does not present the LUN.
#[test]
fn connect_lun_not_presented_names_the_lun() {
    let env = setup();
    let t = &env.tree;
    t.add_session(1, 3, IQN, ADDR, 3260, 0);
    t.add_lun(1, hctl("3:0:0:0"), "sda", "8:0", OTHER_RAW);
    let p = Scripted::new().expect("scsi.scan", |_| done());
    let events = ScriptedEvents::new();
    let start = Instant::now();
    // Shorter than the first 1 s back-off: one scan, then the error.
    let err = connector(&env, &p, &events, Duration::from_millis(500))
        .connect(&single(json!(9)))
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(900));
    let msg = err.to_string();
    assert!(matches!(err, IscsiError::Target { .. }), "{err:?}");
    assert!(msg.contains("presents no LUN 9"), "{msg}");
    assert!(msg.contains("3:0:0:9"), "{msg}");
    // A shared session stays: no logout, no record changes.
    assert_eq!(op_names(&p), ["scsi.scan"]);
    assert!(t.exists("sys/class/iscsi_session/session1"));
}

/// Scenario 6b: the array maps the LUN late; the second scan (after 1 s) finds it.
#[test]
fn connect_rescans_until_the_lun_is_presented() {
    let env = setup();
    let t = &env.tree;
    t.add_session(1, 3, IQN, ADDR, 3260, 0);
    let h = hctl("3:0:0:1");
    let t1 = t.clone();
    let p = Scripted::new()
        .expect("scsi.scan", |_| done())
        .expect("scsi.scan", move |_| {
            t1.add_scsi_device(1, h);
            done()
        });
    let events = disk_events(t, h, "sdb", "8:16");
    let dev = connector(&env, &p, &events, Duration::from_millis(1400))
        .connect(&single(json!(1)))
        .unwrap();
    assert_eq!(dev.path, "/dev/sdb");
    assert_eq!(op_names(&p), ["scsi.scan", "scsi.scan"]);
}

/// Scenario 6c: the session this attach created is undone when the LUN is not
/// presented (connect's doc: "whatever a failed path set up is undone").
#[test]
fn connect_lun_not_presented_logs_out_the_session_it_created() {
    let env = setup();
    let (t1, t2) = (env.tree.clone(), env.tree.clone());
    let p = expect_node_setup(Scripted::new(), true)
        .expect("iscsi.login", move |_| {
            t1.add_session(1, 5, IQN, ADDR, 3260, 0);
            exit(0)
        })
        .expect("scsi.scan", |_| done())
        // Undo: log out, delete the record this attach created.
        .expect("iscsi.logout", move |_| {
            t2.remove_session(1);
            exit(0)
        })
        .expect("iscsi.node_delete", |_| exit(0));
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, Duration::from_millis(500))
        .connect(&single(json!(1)))
        .unwrap_err();
    assert!(err.to_string().contains("presents no LUN 1"), "{err}");
    assert!(p.unused().is_empty(), "not undone: {:?}", p.unused());
    let mut want = node_setup_calls(IQN, PORTAL, true);
    want.extend([
        call("iscsi.login", node(IQN, PORTAL)),
        call(
            "scsi.scan",
            json!({"host": 5, "channel": 0, "target": 0, "lun": 1}),
        ),
    ]);
    want.extend(undo_calls(IQN, PORTAL, true));
    assert_eq!(p.calls(), want);
    assert!(!env.tree.exists("sys/class/iscsi_session/session1"));
}

/// iscsiadm reports a login but no session shows up in sysfs: the login is undone
/// (a record that existed before is kept, with node.startup back to manual).
#[test]
fn connect_login_without_session_is_undone() {
    let env = setup();
    let p = expect_node_setup(Scripted::new(), false)
        .expect("iscsi.login", |_| exit(0))
        .expect("iscsi.logout", |_| exit(21))
        .expect("iscsi.node_configure", |_| done());
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap_err();
    assert!(matches!(err, IscsiError::Target { .. }), "{err:?}");
    assert!(err.to_string().contains("no session is in sysfs"), "{err}");
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    let mut want = node_setup_calls(IQN, PORTAL, false);
    want.extend([call("iscsi.login", node(IQN, PORTAL))]);
    want.extend(undo_calls(IQN, PORTAL, false));
    assert_eq!(p.calls(), want);
    assert_eq!(events.watches_opened(), 0);
}

/// The scan finds the LUN but sd never binds a disk to it: the wait fails at the
/// deadline and the session this attach logged in is undone.
#[test]
fn connect_disk_wait_timeout_logs_out_the_session_it_created() {
    let env = setup();
    let (t1, t2, t3) = (env.tree.clone(), env.tree.clone(), env.tree.clone());
    let h = hctl("5:0:0:1");
    let p = expect_node_setup(Scripted::new(), true)
        .expect("iscsi.login", move |_| {
            t1.add_session(1, 5, IQN, ADDR, 3260, 0);
            exit(0)
        })
        .expect("scsi.scan", move |_| {
            t2.add_scsi_device(1, h);
            done()
        })
        .expect("iscsi.logout", move |_| {
            t3.remove_session(1);
            exit(0)
        })
        .expect("iscsi.node_delete", |_| exit(0));
    // No event ever comes: the wait ends at once with a deadline error.
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap_err();
    assert!(matches!(err, IscsiError::Wait(_)), "{err:?}");
    assert!(p.unused().is_empty(), "not undone: {:?}", p.unused());
    let mut want = node_setup_calls(IQN, PORTAL, true);
    want.extend([
        call("iscsi.login", node(IQN, PORTAL)),
        call(
            "scsi.scan",
            json!({"host": 5, "channel": 0, "target": 0, "lun": 1}),
        ),
    ]);
    want.extend(undo_calls(IQN, PORTAL, true));
    assert_eq!(p.calls(), want);
    assert_eq!(events.watches_opened(), 1);
    assert!(!env.tree.exists("sys/class/iscsi_session/session1"));
}

/// Login exit 15 (the session exists: another attach on the target logged in
/// meanwhile) counts as a login. When the LUN then is not presented, the session
/// is kept because it has a disk (the other volume's LUN 0): no logout, no record
/// change.
#[test]
fn connect_failure_after_login_keeps_a_session_with_disks() {
    let env = setup();
    let t1 = env.tree.clone();
    let p = expect_node_setup(Scripted::new(), false)
        .expect("iscsi.login", move |_| {
            t1.add_session(1, 3, IQN, ADDR, 3260, 0);
            t1.add_lun(1, hctl("3:0:0:0"), "sda", "8:0", OTHER_RAW);
            exit_err(15, "iscsiadm: session exists\n")
        })
        .expect("scsi.scan", |_| done());
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, Duration::from_millis(500))
        .connect(&single(json!(9)))
        .unwrap_err();
    assert!(err.to_string().contains("presents no LUN 9"), "{err}");
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    let mut want = node_setup_calls(IQN, PORTAL, false);
    want.extend([
        call("iscsi.login", node(IQN, PORTAL)),
        call(
            "scsi.scan",
            json!({"host": 3, "channel": 0, "target": 0, "lun": 9}),
        ),
    ]);
    assert_eq!(p.calls(), want);
    assert!(env.tree.exists("sys/class/iscsi_session/session1"));
    assert!(env.tree.exists("sys/block/sda"));
}

/// A logout that fails during the undo is only logged: the record this attach
/// created is still deleted, and the error is the login's.
#[test]
fn connect_undo_continues_after_a_failed_logout() {
    let env = setup();
    let p = expect_node_setup(Scripted::new(), true)
        .expect("iscsi.login", |_| exit_err(8, "iscsiadm: timed out\n"))
        .expect("iscsi.logout", |_| exit_err(1, "iscsiadm: logout failed\n"))
        .expect("iscsi.node_delete", |_| exit(0));
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap_err();
    assert!(
        matches!(err, IscsiError::Login { auth: false, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    let mut want = node_setup_calls(IQN, PORTAL, true);
    want.extend([call("iscsi.login", node(IQN, PORTAL))]);
    want.extend(undo_calls(IQN, PORTAL, true));
    assert_eq!(p.calls(), want);
}

/// Scenario 7a: the first portal fails, the second one attaches.
#[test]
fn connect_tries_alternative_portals_in_order() {
    let env = setup();
    let (t1, t2) = (env.tree.clone(), env.tree.clone());
    let h = hctl("4:0:0:1");
    let p = expect_node_setup(Scripted::new(), true)
        .expect("iscsi.login", |_| {
            exit_err(
                8,
                "iscsiadm: connection login retries (reopen_max) 5 exceeded\n",
            )
        })
        .expect("iscsi.logout", |_| exit(21))
        .expect("iscsi.node_delete", |_| exit(0));
    let p = expect_node_setup(p, false)
        .expect("iscsi.login", move |_| {
            t1.add_session(2, 4, IQN2, ADDR2, 3260, 0);
            exit(0)
        })
        .expect("scsi.scan", move |_| {
            t2.add_scsi_device(2, h);
            done()
        });
    let events = disk_events(&env.tree, h, "sdb", "8:16");
    let v = json!({
        "target_portals": [PORTAL, PORTAL2],
        "target_iqns": [IQN, IQN2],
        "target_luns": [1, 1],
    });
    let dev = connector(&env, &p, &events, LONG)
        .connect(&props(v))
        .unwrap();
    assert_eq!(dev.path, "/dev/sdb");
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    let mut want = node_setup_calls(IQN, PORTAL, true);
    want.extend([call("iscsi.login", node(IQN, PORTAL))]);
    // The failed path is undone before the next one is tried.
    want.extend(undo_calls(IQN, PORTAL, true));
    want.extend(node_setup_calls(IQN2, PORTAL2, false));
    want.extend([
        call("iscsi.login", node(IQN2, PORTAL2)),
        call(
            "scsi.scan",
            json!({"host": 4, "channel": 0, "target": 0, "lun": 1}),
        ),
    ]);
    assert_eq!(p.calls(), want);
}

/// Scenario 7b: every portal fails; the error lists each path.
#[test]
fn connect_all_paths_failed_lists_each() {
    let env = setup();
    let p = expect_node_setup(Scripted::new(), true)
        .expect("iscsi.login", |_| {
            exit_err(8, "iscsiadm: portal one down\n")
        })
        .expect("iscsi.logout", |_| exit(21))
        .expect("iscsi.node_delete", |_| exit(0));
    let p = expect_node_setup(p, true)
        .expect("iscsi.login", |_| exit_err(24, "iscsiadm: auth failed\n"))
        .expect("iscsi.logout", |_| exit(21))
        .expect("iscsi.node_delete", |_| exit(0));
    let events = ScriptedEvents::new();
    let v = json!({
        "target_portals": [PORTAL, PORTAL2],
        "target_iqns": [IQN, IQN2],
        "target_luns": [1, 1],
    });
    let err = connector(&env, &p, &events, LONG)
        .connect(&props(v))
        .unwrap_err();
    let IscsiError::AllPathsFailed(paths) = &err else {
        panic!("expected AllPathsFailed, got {err:?}");
    };
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(
        paths[0].starts_with(&format!("{IQN}@{PORTAL}: ")) && paths[0].contains("portal one down"),
        "{paths:?}"
    );
    assert!(
        paths[1].starts_with(&format!("{IQN2}@{PORTAL2}: ")) && paths[1].contains("CHAP"),
        "{paths:?}"
    );
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    let mut want = Vec::new();
    for (iqn, portal) in [(IQN, PORTAL), (IQN2, PORTAL2)] {
        want.extend(node_setup_calls(iqn, portal, true));
        want.extend([call("iscsi.login", node(iqn, portal))]);
        want.extend(undo_calls(iqn, portal, true));
    }
    assert_eq!(p.calls(), want);
}

/// Scenario 13: a dry run plans the node set-up and the login, then stops; the
/// host is not changed.
#[test]
fn connect_dry_run_stops_after_login_and_changes_nothing() {
    let env = setup();
    let before = env.tree.snapshot();
    let p = DryRun::new();
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap_err();
    assert!(matches!(err, IscsiError::DryRun(_)), "{err:?}");
    let ops: Vec<String> = p
        .planned()
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        ops,
        [
            // The dry run has no record until its plan created one.
            "iscsi.node_configure",
            "iscsi.node_new",
            "iscsi.node_configure",
            "iscsi.login",
        ]
    );
    assert_eq!(env.tree.snapshot(), before);
    assert_eq!(events.watches_opened(), 0);
}

// ---------------------------------------------------------------------------
// disconnect

/// `scsi.delete` of the device at `h`, as the kernel does it (udev follows as an event).
fn kernel_delete(
    t: Tree,
    h: Hctl,
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + use<> {
    move |_| {
        t.remove_lun(h);
        done()
    }
}

/// Scenario 8a: the only LUN on the session; string LUN "1".
#[test]
fn disconnect_removes_the_lun_then_logs_out() {
    let env = setup();
    let h = attached(&env.tree);
    let (t1, t2) = (env.tree.clone(), env.tree.clone());
    let p = Scripted::new()
        .expect("scsi.rescan", |_| done())
        .expect("block.flush", |_| exit(0))
        .expect("scsi.delete", kernel_delete(env.tree.clone(), h))
        .expect("iscsi.node_configure", |_| done())
        .expect("iscsi.logout", move |_| {
            t2.remove_session(1);
            exit(0)
        })
        .expect("iscsi.node_delete", |_| exit(0));
    let events = ScriptedEvents::new()
        .then(move || t1.udev_remove("sdb", "8:16"))
        .then(|| {});
    let out = connector(&env, &p, &events, LONG)
        .disconnect(&single(json!("1")), &info(WWN), false, false)
        .unwrap();
    let by_wwid = json!({"device": "sdb", "expected_wwid": WWN});
    assert_eq!(
        p.calls(),
        [
            call("scsi.rescan", by_wwid.clone()),
            call("block.flush", by_wwid.clone()),
            call("scsi.delete", by_wwid),
            startup_manual_call(IQN, PORTAL),
            call("iscsi.logout", node(IQN, PORTAL)),
            call("iscsi.node_delete", node(IQN, PORTAL)),
        ]
    );
    assert_eq!(
        out,
        DetachOutcome {
            status: "clean".into(),
            removed: vec!["sdb".into()],
            logged_out: vec![format!("{IQN}@{PORTAL}")],
            ..DetachOutcome::default()
        }
    );
    assert_eq!(events.steps_run(), 1);
    assert!(env.tree.links_to("sdb").is_empty());
    assert!(!env.tree.exists("dev/sdb"));
}

/// Scenario 8b: another LUN of the target remains: session kept, no logout.
#[test]
fn disconnect_keeps_a_session_other_luns_use() {
    let env = setup();
    let h = attached(&env.tree);
    env.tree
        .add_lun(1, hctl("3:0:0:2"), "sdc", "8:32", OTHER_RAW);
    let t1 = env.tree.clone();
    let p = Scripted::new()
        .expect("scsi.rescan", |_| done())
        .expect("block.flush", |_| exit(0))
        .expect("scsi.delete", kernel_delete(env.tree.clone(), h));
    let events = ScriptedEvents::new().then(move || t1.udev_remove("sdb", "8:16"));
    let out = connector(&env, &p, &events, LONG)
        .disconnect(&single(json!("1")), &info(WWN), false, false)
        .unwrap();
    assert_eq!(op_names(&p), ["scsi.rescan", "block.flush", "scsi.delete"]);
    assert_eq!(out.status, "clean");
    assert_eq!(out.removed, ["sdb"]);
    assert!(out.logged_out.is_empty());
    assert_eq!(out.kept_sessions.len(), 1, "{out:?}");
    assert_eq!(
        out.kept_sessions[0].what,
        format!("session to {IQN}@{PORTAL}")
    );
    assert!(
        out.kept_sessions[0].reason.contains("/dev/sdc (LUN 2)"),
        "{out:?}"
    );
    assert!(env.tree.exists("sys/block/sdc"));
    assert!(env.tree.exists("sys/class/iscsi_session/session1"));
}

/// Scenario 9a: a device at the LUN with another WWID is not touched.
#[test]
fn disconnect_leaves_a_device_with_another_wwid() {
    for ignore_errors in [false, true] {
        let env = setup();
        env.tree.add_session(1, 3, IQN, ADDR, 3260, 0);
        env.tree
            .add_lun(1, hctl("3:0:0:1"), "sdb", "8:16", OTHER_RAW);
        let before = env.tree.snapshot();
        let p = Scripted::new();
        let events = ScriptedEvents::new();
        let r = connector(&env, &p, &events, LONG).disconnect(
            &single(json!(1)),
            &info(WWN),
            false,
            ignore_errors,
        );
        let out = match (r, ignore_errors) {
            (Ok(out), true) => out,
            (Err(IscsiError::Incomplete(out)), false) => *out,
            (other, _) => panic!("ignore_errors={ignore_errors}: {other:?}"),
        };
        assert!(p.calls().is_empty(), "{:?}", p.calls());
        assert_eq!(out.status, "leftovers");
        assert!(out.removed.is_empty());
        assert_eq!(out.leftovers.len(), 1, "{out:?}");
        assert_eq!(out.leftovers[0].what, "/dev/sdb");
        assert!(
            out.leftovers[0].reason.contains(OTHER_WWN)
                && out.leftovers[0].reason.contains("not touched"),
            "{out:?}"
        );
        // Its session stays (the device is still on it).
        assert!(out.logged_out.is_empty());
        assert_eq!(out.kept_sessions.len(), 1);
        assert_eq!(env.tree.snapshot(), before);
    }
}

/// Scenario 9b: moord's identity check refuses the flush: not deleted.
#[test]
fn disconnect_flush_identity_mismatch_is_not_deleted() {
    let env = setup();
    attached(&env.tree);
    let p = Scripted::new()
        .expect("scsi.rescan", |_| done())
        .expect("block.flush", |_| {
            Err(PrivError::IdentityMismatch {
                op: "block.flush",
                message: format!("sdb has WWID {OTHER_WWN}, expected {WWN}"),
            })
        });
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .disconnect(&single(json!(1)), &info(WWN), false, false)
        .unwrap_err();
    let IscsiError::Incomplete(out) = err else {
        panic!("expected Incomplete, got {err:?}");
    };
    assert_eq!(op_names(&p), ["scsi.rescan", "block.flush"]);
    assert!(out.removed.is_empty());
    assert_eq!(out.leftovers.len(), 1, "{out:?}");
    assert_eq!(out.leftovers[0].what, "/dev/sdb");
    assert!(
        out.leftovers[0].reason.contains("identity changed"),
        "{out:?}"
    );
    assert!(out.logged_out.is_empty());
    assert!(env.tree.exists("sys/block/sdb"));
}

/// Two sessions (two portals), the volume's LUN on each: sdb and sdc.
fn two_paths(t: &Tree) -> (Hctl, Hctl, IscsiProps) {
    t.add_session(1, 3, IQN, ADDR, 3260, 0);
    t.add_session(2, 4, IQN, ADDR2, 3260, 0);
    let (h1, h2) = (hctl("3:0:0:1"), hctl("4:0:0:1"));
    t.add_lun(1, h1, "sdb", "8:16", RAW);
    t.add_lun(2, h2, "sdc", "8:32", RAW);
    let v = json!({
        "target_portals": [PORTAL, PORTAL2],
        "target_iqns": [IQN, IQN],
        "target_luns": [1, 1],
    });
    (h1, h2, props(v))
}

/// Scenario 10a: a failed flush without force removes nothing at all.
#[test]
fn disconnect_flush_failure_without_force_removes_nothing() {
    let env = setup();
    let (_, _, pr) = two_paths(&env.tree);
    let before = env.tree.snapshot();
    // Every identity is refreshed before the first flush.
    let p = Scripted::new()
        .expect("scsi.rescan", |_| done())
        .expect("scsi.rescan", |_| done())
        .expect("block.flush", |_| exit(0))
        .expect("block.flush", |_| exit_err(1, "blockdev: I/O error\n"));
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .disconnect(&pr, &info(WWN), false, false)
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IscsiError::Target { .. }), "{err:?}");
    assert!(msg.contains("flushing /dev/sdc failed"), "{msg}");
    assert!(msg.contains("nothing was removed"), "{msg}");
    let (sdb, sdc) = (
        json!({"device": "sdb", "expected_wwid": WWN}),
        json!({"device": "sdc", "expected_wwid": WWN}),
    );
    assert_eq!(
        p.calls(),
        [
            call("scsi.rescan", sdb.clone()),
            call("scsi.rescan", sdc.clone()),
            call("block.flush", sdb),
            call("block.flush", sdc),
        ]
    );
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert_eq!(events.watches_opened(), 0);
    assert_eq!(env.tree.snapshot(), before);
}

/// Scenario 10b: with force the unflushed device is removed and reported.
#[test]
fn disconnect_flush_failure_with_force_reports_data_loss() {
    let env = setup();
    let (h1, h2, pr) = two_paths(&env.tree);
    let (t1, t2, t3, t4) = (
        env.tree.clone(),
        env.tree.clone(),
        env.tree.clone(),
        env.tree.clone(),
    );
    let p = Scripted::new()
        .expect("scsi.rescan", |_| done())
        .expect("scsi.rescan", |_| done())
        .expect("block.flush", |_| exit_err(1, "blockdev: I/O error\n"))
        .expect("block.flush", |_| exit(0))
        .expect("scsi.delete", kernel_delete(env.tree.clone(), h1))
        .expect("scsi.delete", kernel_delete(env.tree.clone(), h2))
        .expect("iscsi.node_configure", |_| done())
        .expect("iscsi.logout", move |_| {
            t3.remove_session(1);
            exit(0)
        })
        .expect("iscsi.node_delete", |_| exit(0))
        .expect("iscsi.node_configure", |_| done())
        .expect("iscsi.logout", move |_| {
            t4.remove_session(2);
            exit(0)
        })
        .expect("iscsi.node_delete", |_| exit(0));
    let events = ScriptedEvents::new()
        .then(move || t1.udev_remove("sdb", "8:16"))
        .then(move || t2.udev_remove("sdc", "8:32"));
    let out = connector(&env, &p, &events, LONG)
        .disconnect(&pr, &info(WWN), true, false)
        .unwrap();
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    let calls = p.calls();
    assert_eq!(
        op_names(&p)[..6],
        [
            "scsi.rescan",
            "scsi.rescan",
            "block.flush",
            "block.flush",
            "scsi.delete",
            "scsi.delete"
        ]
    );
    assert_eq!(
        calls[2],
        call(
            "block.flush",
            json!({"device": "sdb", "expected_wwid": WWN})
        )
    );
    assert_eq!(
        calls[4],
        call(
            "scsi.delete",
            json!({"device": "sdb", "expected_wwid": WWN})
        )
    );
    assert_eq!(out.status, "clean-with-data-loss");
    assert_eq!(out.data_loss_risk, ["/dev/sdb"]);
    assert_eq!(out.removed, ["sdb", "sdc"]);
    assert_eq!(
        out.logged_out,
        [format!("{IQN}@{PORTAL}"), format!("{IQN}@{PORTAL2}")]
    );
    assert!(out.leftovers.is_empty(), "{out:?}");
    assert!(out.summary().contains("/dev/sdb"), "{}", out.summary());
}

/// Scenario 11: no WWID in device_info: refused before any operation.
#[test]
fn disconnect_without_scsi_wwn_is_refused_before_any_op() {
    let env = setup();
    attached(&env.tree);
    let p = Scripted::new();
    let events = ScriptedEvents::new();
    for wwn in ["", "  "] {
        let err = connector(&env, &p, &events, LONG)
            .disconnect(&single(json!(1)), &info(wwn), true, true)
            .unwrap_err();
        assert!(matches!(err, IscsiError::NoIdentity), "{err:?}");
    }
    assert!(p.calls().is_empty());
    assert_eq!(events.watches_opened(), 0);
    // Not even a lock file was created.
    assert!(!env.locks.path().exists());
}

/// Scenario 12: udev never removes one by-id link: the leftover names it.
#[test]
fn disconnect_removal_that_never_completes_names_what_is_left() {
    // udev removes the node and all links but the wwn- one; moord is then asked to
    // remove that stale link: once it does, once it refuses.
    const LINK: &str = "/dev/disk/by-id/wwn-0x600a09803830447a4f244c4657616f6f";
    for moord_removes in [true, false] {
        let env = setup();
        let h = attached(&env.tree);
        let (t1, t2, t3) = (env.tree.clone(), env.tree.clone(), env.tree.clone());
        let p = Scripted::new()
            .expect("scsi.rescan", |_| done())
            .expect("block.flush", |_| exit(0))
            .expect("scsi.delete", kernel_delete(env.tree.clone(), h))
            .expect("block.remove_stale_link", move |a| {
                assert_eq!(a, &json!({"link": LINK, "device": "sdb"}));
                if moord_removes {
                    t3.remove(&LINK[1..]);
                    exit(0)
                } else {
                    Err(PrivError::IdentityMismatch {
                        op: "block.remove_stale_link",
                        message: "refused".into(),
                    })
                }
            })
            .expect("iscsi.node_configure", |_| done())
            .expect("iscsi.logout", move |_| {
                t2.remove_session(1);
                exit(0)
            })
            .expect("iscsi.node_delete", |_| exit(0));
        let events = ScriptedEvents::new().then(move || {
            t1.remove("dev/sdb");
            t1.remove("dev/disk/by-id/scsi-3600a09803830447a4f244c4657616f6f");
            t1.remove("dev/disk/by-path/ip-session1-lun-1");
        });
        let r = connector(&env, &p, &events, LONG).disconnect(
            &single(json!(1)),
            &info(WWN),
            false,
            false,
        );
        assert!(p.unused().is_empty(), "{:?}", p.unused());
        if moord_removes {
            let out = r.unwrap();
            assert_eq!(out.status, "clean");
            assert_eq!(out.removed, ["sdb"]);
            assert_eq!(out.logged_out, [format!("{IQN}@{PORTAL}")]);
            continue;
        }
        let Err(IscsiError::Incomplete(out)) = r else {
            panic!("expected Incomplete, got {r:?}");
        };
        assert_eq!(out.status, "leftovers");
        assert!(out.removed.is_empty());
        assert_eq!(out.leftovers.len(), 1, "{out:?}");
        assert_eq!(out.leftovers[0].what, "/dev/sdb");
        let reason = &out.leftovers[0].reason;
        assert!(
            reason.contains("dev/disk/by-id/wwn-0x600a09803830447a4f244c4657616f6f still present"),
            "{reason}"
        );
        assert!(!reason.contains("by-path"), "{reason}");
        // The kernel device is gone, so the session is no longer used: logged out.
        assert_eq!(out.logged_out, [format!("{IQN}@{PORTAL}")]);
    }
}

/// A device held by a dm device that is not this volume's multipath map (LVM, or
/// another WWID's map) is left alone: its identity is refreshed, then nothing.
#[test]
fn disconnect_leaves_a_device_held_by_dm() {
    for holder in ["plain", "lvm", "other-map"] {
        let env = setup();
        attached(&env.tree);
        match holder {
            "plain" => env.tree.add_holder("sdb", "dm-0"),
            "lvm" => env
                .tree
                .add_dm("dm-0", "253:0", "vg-lv", Some("LVM-xyz"), &["sdb"]),
            _ => env
                .tree
                .add_multipath_map("dm-0", "253:0", "mpathb", OTHER_WWN, &["sdb"]),
        }
        let before = env.tree.snapshot();
        let p = Scripted::new().expect("scsi.rescan", |_| done());
        let events = ScriptedEvents::new();
        let out = connector(&env, &p, &events, LONG)
            .disconnect(&single(json!(1)), &info(WWN), false, true)
            .unwrap();
        assert_eq!(
            p.calls(),
            [call(
                "scsi.rescan",
                json!({"device": "sdb", "expected_wwid": WWN})
            )],
            "{holder}"
        );
        assert_eq!(out.status, "leftovers");
        assert!(out.removed.is_empty());
        assert_eq!(out.leftovers.len(), 1, "{holder}: {out:?}");
        assert_eq!(out.leftovers[0].what, "/dev/sdb");
        assert!(
            out.leftovers[0].reason.contains("in use by dm-0")
                && out.leftovers[0]
                    .reason
                    .contains("not this volume's multipath map"),
            "{holder}: {out:?}"
        );
        // The session still carries the disk: kept, not logged out.
        assert!(out.logged_out.is_empty());
        assert_eq!(out.kept_sessions.len(), 1, "{holder}: {out:?}");
        assert_eq!(env.tree.snapshot(), before, "{holder}");
    }
}

/// A dry-run detach plans every step and changes nothing.
#[test]
fn disconnect_dry_run_plans_and_changes_nothing() {
    let env = setup();
    attached(&env.tree);
    let before = env.tree.snapshot();
    let p = DryRun::new();
    let events = ScriptedEvents::new();
    let out = connector(&env, &p, &events, LONG)
        .disconnect(&single(json!(1)), &info(WWN), false, false)
        .unwrap();
    let ops: Vec<String> = p
        .planned()
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        ops,
        [
            "scsi.rescan",
            "block.flush",
            "scsi.delete",
            "iscsi.node_configure",
            "iscsi.logout",
            "iscsi.node_delete",
        ]
    );
    assert_eq!(out.removed, ["sdb"]);
    assert_eq!(env.tree.snapshot(), before);
}

// ---------------------------------------------------------------------------
// locks

fn soon() -> Instant {
    Instant::now() + Duration::from_millis(100)
}

fn target(iqn: &str, portal: &str) -> IscsiTarget {
    IscsiTarget {
        portal: portal.parse().unwrap(),
        iqn: iqn.parse().unwrap(),
        lun: crate::types::Lun(1),
    }
}

/// Attaches of volumes on different targets hold their locks together; on one
/// target they take turns (an attach holds its target's lock exclusive for login,
/// scan and wait, since a failed attach may log the session out again).
#[test]
fn attaches_of_different_volumes_hold_locks_together() {
    let env = setup();
    let a = target(IQN, PORTAL);
    let b = target(IQN2, PORTAL2);
    let mut c_same_target = a.clone();
    c_same_target.lun = crate::types::Lun(2);
    let l = &env.locks;
    let va = l.lock(&volume_lock(&a), Mode::Exclusive, soon()).unwrap();
    let ta = l.lock(&target_lock(&a), Mode::Exclusive, soon()).unwrap();
    let _vb = l.lock(&volume_lock(&b), Mode::Exclusive, soon()).unwrap();
    let _tb = l.lock(&target_lock(&b), Mode::Exclusive, soon()).unwrap();
    // Another volume on A's target has its own volume lock…
    let _vc = l
        .lock(&volume_lock(&c_same_target), Mode::Exclusive, soon())
        .unwrap();
    // … but waits for A's attach to release the target.
    for mode in [Mode::Shared, Mode::Exclusive] {
        assert!(
            matches!(
                l.lock(&target_lock(&c_same_target), mode, soon()),
                Err(LockError::Timeout { .. })
            ),
            "{mode:?}"
        );
    }
    // The same volume twice is excluded.
    assert!(matches!(
        l.lock(&volume_lock(&a), Mode::Exclusive, soon()),
        Err(LockError::Timeout { .. })
    ));

    // A real attach of volume A runs while B's attach holds both of its locks and
    // C holds its volume lock; during the attach A's target lock is held
    // exclusive (not even a shared lock is granted), B's stays independent.
    drop((va, ta));
    attached(&env.tree);
    let locks = env.locks.clone();
    let p = Scripted::new().expect("scsi.rescan", move |_| {
        let held = |mode| {
            matches!(
                locks.lock(&target_lock(&target(IQN, PORTAL)), mode, soon()),
                Err(LockError::Timeout { .. })
            )
        };
        if held(Mode::Shared) && held(Mode::Exclusive) {
            done()
        } else {
            Err(PrivError::Failed {
                op: "scsi.rescan",
                message: "the attach does not hold its target lock exclusive".into(),
            })
        }
    });
    let events = ScriptedEvents::new();
    let dev = connector(&env, &p, &events, Duration::from_millis(800))
        .connect(&single(json!(1)))
        .unwrap();
    assert_eq!(dev.path, "/dev/sdb");
    assert!(p.unused().is_empty());
    // Released afterwards: C's attach may proceed on the target.
    l.lock(&target_lock(&c_same_target), Mode::Exclusive, soon())
        .unwrap();
}

/// A detach's exclusive target lock excludes an attach on that target, and an
/// attach in progress excludes the detach.
#[test]
fn detach_target_lock_excludes_attach() {
    let env = setup();
    attached(&env.tree);
    let a = target(IQN, PORTAL);
    let held = env
        .locks
        .lock(&target_lock(&a), Mode::Exclusive, soon())
        .unwrap();
    assert!(matches!(
        env.locks.lock(&target_lock(&a), Mode::Shared, soon()),
        Err(LockError::Timeout { .. })
    ));
    let p = Scripted::new();
    let events = ScriptedEvents::new();
    let c = connector(&env, &p, &events, Duration::from_millis(200));
    let err = c.connect(&single(json!(1))).unwrap_err();
    assert!(
        matches!(err, IscsiError::Lock(LockError::Timeout { .. })),
        "{err:?}"
    );
    assert!(p.calls().is_empty());
    drop(held);

    // Another volume's attach on the target holds it (exclusive, as attaches
    // do): the detach waits and gives up at its deadline without touching anything.
    let mut other = a.clone();
    other.lun = crate::types::Lun(2);
    let _attach = env
        .locks
        .lock(&target_lock(&other), Mode::Exclusive, soon())
        .unwrap();
    let err = c
        .disconnect(&single(json!(1)), &info(WWN), true, true)
        .unwrap_err();
    assert!(
        matches!(err, IscsiError::Lock(LockError::Timeout { .. })),
        "{err:?}"
    );
    assert!(p.calls().is_empty());
    assert!(env.tree.exists("sys/block/sdb"));
}

// ---------------------------------------------------------------------------
// attachment records

fn registry(env: &Env) -> Registry {
    Registry::new(env.locks.path().with_file_name("attachments"))
}

/// A record of `device` as an earlier attach would have written it.
fn record(env: &Env, device: &str, wwid: &str, sysfs_ino: u64) {
    registry(env)
        .record(&Attachment {
            device: device.into(),
            wwid: wwid.into(),
            sysfs_ino,
            protocol: "iscsi".into(),
            target: format!("{IQN}@{PORTAL} lun 1"),
            volume_id: Some("vol-old".into()),
            attached_at: 1,
        })
        .unwrap();
}

fn ino(env: &Env, device: &str) -> u64 {
    device_ino(&env.tree.paths(), device).unwrap().unwrap()
}

/// An attach records the disk it hands out (WWID, sysfs inode, target).
#[test]
fn connect_records_the_attachment() {
    let env = setup();
    attached(&env.tree);
    let p = Scripted::new().expect("scsi.rescan", |_| done());
    let events = ScriptedEvents::new();
    let v = json!({"target_portal": PORTAL, "target_iqn": IQN, "target_lun": 1,
                   "volume_id": "vol-1"});
    connector(&env, &p, &events, LONG)
        .connect(&props(v))
        .unwrap();
    let a = registry(&env).get("sdb").expect("recorded");
    assert_eq!(a.device, "sdb");
    assert_eq!(a.wwid, WWN);
    assert_eq!(a.sysfs_ino, ino(&env, "sdb"));
    assert_eq!(a.protocol, "iscsi");
    assert_eq!(a.target, format!("{IQN}@{PORTAL} lun 1"));
    assert_eq!(a.volume_id.as_deref(), Some("vol-1"));
    assert_eq!(registry(&env).all().len(), 1);
}

/// A disk at the LUN whose record (same kernel object) carries another WWID than
/// the refreshed one is stale: refused, its record kept. A record of an earlier
/// kernel object of that name is ignored (and replaced).
#[test]
fn connect_refuses_a_disk_recorded_with_another_wwid() {
    let env = setup();
    attached(&env.tree);
    record(&env, "sdb", OTHER_WWN, ino(&env, "sdb"));
    let p = Scripted::new().expect("scsi.rescan", |_| done());
    let events = ScriptedEvents::new();
    let c = connector(&env, &p, &events, LONG);
    let err = c.connect(&single(json!(1))).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IscsiError::Target { .. }), "{err:?}");
    assert!(msg.contains("stale device /dev/sdb"), "{msg}");
    assert!(msg.contains("vol-old") && msg.contains(OTHER_WWN), "{msg}");
    assert!(msg.contains(&format!("now presents WWID {WWN}")), "{msg}");
    assert_eq!(
        p.calls(),
        [call(
            "scsi.rescan",
            json!({"device": "sdb", "expected_wwid": WWN})
        )]
    );
    assert_eq!(registry(&env).get("sdb").unwrap().wwid, OTHER_WWN);

    // The record names another kernel object (inode): not this disk's.
    record(&env, "sdb", OTHER_WWN, ino(&env, "sdb") + 1);
    let p = Scripted::new().expect("scsi.rescan", |_| done());
    let dev = connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap();
    assert_eq!(dev.path, "/dev/sdb");
    let a = registry(&env).get("sdb").unwrap();
    assert_eq!((a.wwid.as_str(), a.sysfs_ino), (WWN, ino(&env, "sdb")));
}

/// A complete detach forgets the disk's record; one that leaves the disk keeps it.
#[test]
fn disconnect_removes_the_attachment_record() {
    let env = setup();
    let h = attached(&env.tree);
    record(&env, "sdb", WWN, ino(&env, "sdb"));
    let (t1, t2) = (env.tree.clone(), env.tree.clone());
    let p = Scripted::new()
        .expect("scsi.rescan", |_| done())
        .expect("block.flush", |_| exit(0))
        .expect("scsi.delete", kernel_delete(env.tree.clone(), h))
        .expect("iscsi.node_configure", |_| done())
        .expect("iscsi.logout", move |_| {
            t2.remove_session(1);
            exit(0)
        })
        .expect("iscsi.node_delete", |_| exit(0));
    let events = ScriptedEvents::new().then(move || t1.udev_remove("sdb", "8:16"));
    let out = connector(&env, &p, &events, LONG)
        .disconnect(&single(json!(1)), &info(WWN), false, false)
        .unwrap();
    assert_eq!(out.removed, ["sdb"]);
    assert_eq!(registry(&env).get("sdb"), None);

    // A failed flush: nothing removed, the record stays.
    let env = setup();
    attached(&env.tree);
    record(&env, "sdb", WWN, ino(&env, "sdb"));
    let p = Scripted::new()
        .expect("scsi.rescan", |_| done())
        .expect("block.flush", |_| exit_err(1, "blockdev: I/O error\n"));
    let events = ScriptedEvents::new();
    connector(&env, &p, &events, LONG)
        .disconnect(&single(json!(1)), &info(WWN), false, false)
        .unwrap_err();
    assert!(registry(&env).get("sdb").is_some());
}

// ---------------------------------------------------------------------------
// multipath attach

fn mp_connector<'a>(
    env: &Env,
    privileged: &'a dyn Privileged,
    events: &'a dyn DeviceEvents,
    timeout: Duration,
) -> IscsiConnector<'a> {
    let mut c = connector(env, privileged, events, timeout);
    c.options.multipath = true;
    c
}

/// The volume listed on `portals` (same IQN, LUN 1).
fn listed(portals: &[&str]) -> IscsiProps {
    props(json!({
        "target_portals": portals,
        "target_iqns": vec![IQN; portals.len()],
        "target_luns": vec![1; portals.len()],
    }))
}

fn by_wwid(device: &str) -> Value {
    json!({"device": device, "expected_wwid": WWN})
}

fn ops_with_prefix(p: &Scripted, prefix: &str) -> Vec<(String, Value)> {
    p.calls()
        .into_iter()
        .filter(|(op, _)| op.starts_with(prefix))
        .collect()
}

/// The calls of one path's connect_path that carry `portal`, in order.
fn calls_for_portal(p: &Scripted, portal: &str) -> Vec<(String, Value)> {
    p.calls()
        .into_iter()
        .filter(|(_, a)| a.get("portal").and_then(Value::as_str) == Some(portal))
        .collect()
}

/// One listed path, no session yet: log in, scan, then whitelist the WWID, hand
/// the path to multipathd, wait for the map (an event) and check it is ready.
#[test]
fn connect_multipath_one_path_builds_and_checks_the_map() {
    let env = setup();
    let (t1, t2, t3) = (env.tree.clone(), env.tree.clone(), env.tree.clone());
    let h = hctl("3:0:0:1");
    let p = Scripted::new().expect("multipath.status", |_| exit(0));
    let p = expect_node_setup(p, true)
        .expect("iscsi.login", move |_| {
            t1.add_session(1, 3, IQN, ADDR, 3260, 0);
            exit(0)
        })
        .expect("scsi.scan", move |_| {
            t2.add_scsi_device(1, h);
            done()
        })
        .expect("multipath.add_wwid", |_| exit(0))
        .expect("multipath.add_path", |_| exit(0))
        .expect("multipath.check", |_| exit(0));
    // sd and udev finish the disk (3 events), then multipathd creates the map.
    let events = ScriptedEvents::new();
    let (b1, b2, b3) = (env.tree.clone(), env.tree.clone(), env.tree.clone());
    let events = events
        .then(move || b1.add_block(h, "sdb", "8:16"))
        .then(move || b2.set_wwid(h, RAW))
        .then(move || b3.udev_add("sdb", "8:16", &by_id_links(RAW)))
        .then(move || t3.add_multipath_map("dm-0", "253:0", "mpatha", WWN, &["sdb"]))
        .then(|| {});
    let dev = mp_connector(&env, &p, &events, LONG)
        .connect(&listed(&[PORTAL]))
        .unwrap();
    assert_eq!(
        dev,
        DeviceInfo {
            kind: "block".into(),
            path: "/dev/dm-0".into(),
            scsi_wwn: WWN.into(),
            multipath_id: Some(WWN.into()),
            devices: vec!["sdb 3:0:0:1".into()],
            encryption: None,
        }
    );
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    let mut want = vec![call("multipath.status", json!({}))];
    want.extend(mp_node_setup_calls(IQN, PORTAL, true));
    want.extend([
        call("iscsi.login", node(IQN, PORTAL)),
        call(
            "scsi.scan",
            json!({"host": 3, "channel": 0, "target": 0, "lun": 1}),
        ),
        call("multipath.add_wwid", by_wwid("sdb")),
        call("multipath.add_path", by_wwid("sdb")),
        call(
            "multipath.check",
            json!({"device": "dm-0", "expected_wwid": WWN}),
        ),
    ]);
    assert_eq!(p.calls(), want);
    assert_eq!(events.steps_run(), 4);
    assert_eq!(events.remaining(), 1);
    assert_eq!(registry(&env).get("sdb").unwrap().wwid, WWN);
}

/// Two listed paths, no sessions: both logins run at the same time (each login
/// waits for the other path's), the map is built over both disks, and its
/// readiness is checked until multipath -C succeeds.
#[test]
fn connect_multipath_two_paths_log_in_in_parallel() {
    use std::sync::mpsc;
    let env = setup();
    let (tx1, rx1) = mpsc::channel::<()>();
    let (tx2, rx2) = mpsc::channel::<()>();
    let login = |t: Tree,
                 session: u32,
                 host: u32,
                 addr: &'static str,
                 tx: mpsc::Sender<()>,
                 rx: mpsc::Receiver<()>| {
        move |_: &Value| {
            t.add_session(session, host, IQN, addr, 3260, 0);
            let _ = tx.send(());
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(()) => exit(0),
                Err(_) => Err(PrivError::Failed {
                    op: "iscsi.login",
                    message: "the other path never logged in: paths are not parallel".into(),
                }),
            }
        }
    };
    let scan = |t: Tree, session: u32, h: Hctl, name: &'static str, devnum: &'static str| {
        move |_: &Value| {
            t.add_lun(session, h, name, devnum, RAW);
            done()
        }
    };
    let (h1, h2) = (hctl("3:0:0:1"), hctl("4:0:0:1"));
    let mut p = Scripted::new()
        .unordered()
        .expect("multipath.status", |_| exit(0));
    for portal in [PORTAL, PORTAL2] {
        let at = json!({ "portal": portal });
        p = p
            // No record yet; unordered: the first configure of the path takes the
            // first expectation.
            .expect_args("iscsi.node_configure", at.clone(), |_| not_found())
            .expect_args("iscsi.node_new", at.clone(), |_| exit(0))
            .expect_args("iscsi.node_configure", at, |_| done());
    }
    let p = p
        .expect_args(
            "iscsi.login",
            json!({ "portal": PORTAL }),
            login(env.tree.clone(), 1, 3, ADDR, tx1, rx2),
        )
        .expect_args(
            "iscsi.login",
            json!({ "portal": PORTAL2 }),
            login(env.tree.clone(), 2, 4, ADDR2, tx2, rx1),
        )
        .expect_args(
            "scsi.scan",
            json!({"host": 3}),
            scan(env.tree.clone(), 1, h1, "sdb", "8:16"),
        )
        .expect_args(
            "scsi.scan",
            json!({"host": 4}),
            scan(env.tree.clone(), 2, h2, "sdc", "8:32"),
        )
        .expect_args("multipath.add_wwid", by_wwid("sdb"), |_| exit(0))
        .expect_args("multipath.add_path", by_wwid("sdb"), |_| exit(0))
        .expect_args("multipath.add_path", by_wwid("sdc"), |_| exit(0))
        // Not ready at first (path checkers have not run), then ready.
        .expect("multipath.check", |_| exit_err(1, ""))
        .expect("multipath.check", |_| exit(0));
    // multipathd builds the map over the first path, then adds the second.
    let (t1, t2) = (env.tree.clone(), env.tree.clone());
    let events = ScriptedEvents::new()
        .then(move || t1.add_multipath_map("dm-0", "253:0", "mpatha", WWN, &["sdb"]))
        .then(move || t2.add_slave("dm-0", "sdc"))
        .then(|| {});
    let dev = mp_connector(&env, &p, &events, LONG)
        .connect(&listed(&[PORTAL, PORTAL2]))
        .unwrap();
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert_eq!(dev.path, "/dev/dm-0");
    assert_eq!(dev.scsi_wwn, WWN);
    assert_eq!(dev.multipath_id.as_deref(), Some(WWN));
    assert_eq!(dev.devices, ["sdb 3:0:0:1", "sdc 4:0:0:1"]);
    // Each path's own steps, in order.
    for (iqn, portal, host) in [(IQN, PORTAL, 3), (IQN, PORTAL2, 4)] {
        let mut want = mp_node_setup_calls(iqn, portal, true);
        want.extend([call("iscsi.login", node(iqn, portal))]);
        assert_eq!(calls_for_portal(&p, portal), want, "{portal}");
        assert!(p.calls().contains(&call(
            "scsi.scan",
            json!({"host": host, "channel": 0, "target": 0, "lun": 1})
        )));
    }
    // The map steps come after both paths, in order.
    let check = json!({"device": "dm-0", "expected_wwid": WWN});
    assert_eq!(
        ops_with_prefix(&p, "multipath."),
        [
            call("multipath.status", json!({})),
            call("multipath.add_wwid", by_wwid("sdb")),
            call("multipath.add_path", by_wwid("sdb")),
            call("multipath.add_path", by_wwid("sdc")),
            call("multipath.check", check.clone()),
            call("multipath.check", check),
        ]
    );
    let names = op_names(&p);
    let first_mp = names
        .iter()
        .position(|o| o == "multipath.add_wwid")
        .unwrap();
    assert!(
        names[first_mp..]
            .iter()
            .all(|o| o.starts_with("multipath.")),
        "{names:?}"
    );
    assert_eq!(events.steps_run(), 2);
    assert_eq!(env.tree.slaves("dm-0"), ["sdb", "sdc"]);
    let reg = registry(&env);
    assert_eq!(
        reg.get("sdb").unwrap().target,
        format!("{IQN}@{PORTAL} lun 1")
    );
    assert_eq!(
        reg.get("sdc").unwrap().target,
        format!("{IQN}@{PORTAL2} lun 1")
    );
}

/// The disk is already in this volume's map: the map is reused (nothing added),
/// only checked.
#[test]
fn connect_multipath_reuses_an_existing_map() {
    let env = setup();
    attached(&env.tree);
    env.tree
        .add_multipath_map("dm-3", "253:3", "mpathd", WWN, &["sdb"]);
    let p = Scripted::new()
        .expect("multipath.status", |_| exit(0))
        .expect("scsi.rescan", |_| done())
        .expect("multipath.check", |_| exit(0));
    let events = ScriptedEvents::new();
    let dev = mp_connector(&env, &p, &events, LONG)
        .connect(&listed(&[PORTAL]))
        .unwrap();
    assert_eq!(dev.path, "/dev/dm-3");
    assert_eq!(dev.multipath_id.as_deref(), Some(WWN));
    assert_eq!(
        p.calls(),
        [
            call("multipath.status", json!({})),
            call("scsi.rescan", by_wwid("sdb")),
            call(
                "multipath.check",
                json!({"device": "dm-3", "expected_wwid": WWN})
            ),
        ]
    );
}

/// The disk is held by a map of another WWID: the attach does not hand that map
/// out.
#[test]
fn connect_multipath_refuses_a_map_of_another_wwid() {
    let env = setup();
    attached(&env.tree);
    env.tree
        .add_multipath_map("dm-3", "253:3", "mpathd", OTHER_WWN, &["sdb"]);
    let p = Scripted::new()
        .expect("multipath.status", |_| exit(0))
        .expect("scsi.rescan", |_| done())
        .expect("multipath.add_wwid", |_| exit(0))
        .expect("multipath.add_path", |_| exit(0));
    let events = ScriptedEvents::new();
    let err = mp_connector(&env, &p, &events, LONG)
        .connect(&listed(&[PORTAL]))
        .unwrap_err();
    assert!(matches!(err, IscsiError::Multipath(_)), "{err:?}");
    assert!(err.to_string().contains("dm-3"), "{err}");
    assert!(!op_names(&p).contains(&"multipath.check".to_string()));
}

/// multipathd not running and the volume enforces multipath: refused, nothing run
/// after the status query (also when moord cannot run the query).
#[test]
fn connect_enforce_multipath_refuses_without_multipathd() {
    for failure in ["exit", "error"] {
        let env = setup();
        attached(&env.tree);
        let before = env.tree.snapshot();
        let p = Scripted::new().expect("multipath.status", move |_| {
            if failure == "exit" {
                exit_err(1, "multipathd: not running\n")
            } else {
                Err(PrivError::Failed {
                    op: "multipath.status",
                    message: "multipathd not found".into(),
                })
            }
        });
        let events = ScriptedEvents::new();
        let v = json!({"target_portal": PORTAL, "target_iqn": IQN, "target_lun": 1,
                       "enforce_multipath": true});
        let err = mp_connector(&env, &p, &events, LONG)
            .connect(&props(v))
            .unwrap_err();
        assert!(
            matches!(err, IscsiError::Multipath(_)),
            "{failure}: {err:?}"
        );
        assert!(err.to_string().contains("enforce_multipath"), "{err}");
        assert_eq!(
            p.calls(),
            [call("multipath.status", json!({}))],
            "{failure}"
        );
        assert_eq!(events.watches_opened(), 0);
        assert_eq!(env.tree.snapshot(), before);
        assert!(registry(&env).all().is_empty());
    }
}

/// multipathd not running, multipath not enforced: a single-path attach.
#[test]
fn connect_multipath_falls_back_to_single_path() {
    let env = setup();
    attached(&env.tree);
    let p = Scripted::new()
        .expect("multipath.status", |_| exit_err(1, "not running\n"))
        .expect("scsi.rescan", |_| done());
    let events = ScriptedEvents::new();
    let dev = mp_connector(&env, &p, &events, LONG)
        .connect(&listed(&[PORTAL]))
        .unwrap();
    assert_eq!(dev.path, "/dev/sdb");
    assert_eq!(dev.multipath_id, None);
    assert_eq!(dev.scsi_wwn, WWN);
    assert_eq!(op_names(&p), ["multipath.status", "scsi.rescan"]);
    assert!(p.unused().is_empty());
}

/// The paths report different WWIDs: no map is built over different volumes.
#[test]
fn connect_multipath_refuses_paths_that_disagree() {
    let env = setup();
    let t = &env.tree;
    t.add_session(1, 3, IQN, ADDR, 3260, 0);
    t.add_session(2, 4, IQN, ADDR2, 3260, 0);
    t.add_lun(1, hctl("3:0:0:1"), "sdb", "8:16", RAW);
    t.add_lun(2, hctl("4:0:0:1"), "sdc", "8:32", OTHER_RAW);
    let before = t.snapshot();
    let p = Scripted::new()
        .unordered()
        .expect("multipath.status", |_| exit(0))
        .expect_args("scsi.rescan", json!({"device": "sdb"}), |_| done())
        .expect_args("scsi.rescan", json!({"device": "sdc"}), |_| done());
    let events = ScriptedEvents::new();
    let err = mp_connector(&env, &p, &events, LONG)
        .connect(&listed(&[PORTAL, PORTAL2]))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IscsiError::Multipath(_)), "{err:?}");
    assert!(msg.contains("do not agree"), "{msg}");
    assert!(msg.contains("sdc") && msg.contains(OTHER_WWN), "{msg}");
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    let mut ops = op_names(&p);
    ops.sort();
    assert_eq!(ops, ["multipath.status", "scsi.rescan", "scsi.rescan"]);
    assert!(registry(&env).all().is_empty());
    assert_eq!(t.snapshot(), before);
}

/// Both paths of the volume with their disks and the map over them.
fn two_paths_in_a_map(t: &Tree) -> (Hctl, Hctl, IscsiProps) {
    let r = two_paths(t);
    t.add_multipath_map("dm-0", "253:0", "mpatha", WWN, &["sdb", "sdc"]);
    r
}

/// `iscsiadm -m node --op show` output: one record per (iqn, address, startup).
fn node_records(records: &[(&str, &str, &str)]) -> String {
    records
        .iter()
        .map(|(iqn, addr, startup)| {
            format!(
                "# BEGIN RECORD 2.1.9\nnode.name = {iqn}\nnode.tpgt = 1\nnode.startup = {startup}\n\
                 node.conn[0].address = {addr}\nnode.conn[0].port = 3260\n# END RECORD\n"
            )
        })
        .collect()
}

const SENDTARGETS: &str = "192.0.2.10:3260,1 iqn.2010-10.org.openstack:volume-1\n\
                           192.0.2.11:3260,2 iqn.2010-10.org.openstack:volume-1\n\
                           192.0.2.10:3260,1 iqn.2010-10.org.openstack:volume-2\n";

/// No target lists: the paths come from sendtargets discovery through
/// target_portal (only the volume's IQN), and the node.startup discovery reset
/// on an existing record is put back.
#[test]
fn connect_multipath_discovers_paths_and_restores_node_startup() {
    let env = setup();
    two_paths_in_a_map(&env.tree);
    let p = Scripted::new()
        .unordered()
        .expect("multipath.status", |_| exit(0))
        .expect("iscsi.portal_nodes", |_| {
            Ok(exec_reply(
                0,
                &node_records(&[(IQN, ADDR, "automatic"), (IQN2, ADDR, "manual")]),
                "",
            ))
        })
        .expect("iscsi.discover", |_| Ok(exec_reply(0, SENDTARGETS, "")))
        .expect("iscsi.portal_nodes", |_| {
            Ok(exec_reply(
                0,
                &node_records(&[(IQN, ADDR, "manual"), (IQN2, ADDR, "manual")]),
                "",
            ))
        })
        .expect("iscsi.node_update", |_| exit(0))
        .expect_args("scsi.rescan", json!({"device": "sdb"}), |_| done())
        .expect_args("scsi.rescan", json!({"device": "sdc"}), |_| done())
        .expect("multipath.check", |_| exit(0));
    let events = ScriptedEvents::new();
    let dev = mp_connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap();
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert_eq!(dev.path, "/dev/dm-0");
    assert_eq!(dev.devices, ["sdb 3:0:0:1", "sdc 4:0:0:1"]);
    let calls = p.calls();
    assert_eq!(
        calls[..5],
        [
            call("multipath.status", json!({})),
            call("iscsi.portal_nodes", json!({ "portal": PORTAL })),
            call(
                "iscsi.discover",
                json!({"portal": PORTAL, "iface": "default"})
            ),
            call("iscsi.portal_nodes", json!({ "portal": PORTAL })),
            // Only the record whose node.startup the discovery changed.
            call(
                "iscsi.node_update",
                update(IQN, PORTAL, "node.startup", "automatic")
            ),
        ]
    );
    assert_eq!(
        calls.last().unwrap(),
        &call(
            "multipath.check",
            json!({"device": "dm-0", "expected_wwid": WWN})
        )
    );
    // volume-2 (another target behind the portal) is not a path of this volume.
    assert!(!calls.iter().any(|(_, a)| a.to_string().contains(IQN2)));
    assert_eq!(
        registry(&env).get("sdc").unwrap().target,
        format!("{IQN}@{PORTAL2} lun 1")
    );
}

/// Discovery with (mutual) CHAP: the discovery record is set up through typed
/// updates, the passwords only ever travel in iscsi.discovery_secret.
#[test]
fn connect_multipath_discovery_chap_secrets_only_in_discovery_secret() {
    let env = setup();
    two_paths_in_a_map(&env.tree);
    let p = Scripted::new()
        .unordered()
        .expect("multipath.status", |_| exit(0))
        // No records yet (iscsiadm: no objects found).
        .expect("iscsi.portal_nodes", |_| exit(21))
        // A discovery record exists already: fine.
        .expect("iscsi.discovery_new", |_| exit(6))
        .expect("iscsi.discovery_update", |_| exit(0))
        .expect("iscsi.discovery_update", |_| exit(0))
        .expect("iscsi.discovery_secret", |_| done())
        .expect("iscsi.discovery_update", |_| exit(0))
        .expect("iscsi.discovery_secret", |_| done())
        .expect("iscsi.discovery_run", |_| {
            Ok(exec_reply(0, SENDTARGETS, ""))
        })
        .expect("iscsi.portal_nodes", |_| {
            Ok(exec_reply(0, &node_records(&[(IQN, ADDR, "manual")]), ""))
        })
        .expect_args("scsi.rescan", json!({"device": "sdb"}), |_| done())
        .expect_args("scsi.rescan", json!({"device": "sdc"}), |_| done())
        .expect("multipath.check", |_| exit(0));
    let events = ScriptedEvents::new();
    let v = json!({
        "target_portal": PORTAL, "target_iqn": IQN, "target_lun": 1,
        "discovery_auth_method": "CHAP", "discovery_auth_username": "disc-user",
        "discovery_auth_password": SECRET, "discovery_auth_username_in": "disc-tgt",
        "discovery_auth_password_in": SECRET_IN,
    });
    let dev = mp_connector(&env, &p, &events, LONG)
        .connect(&props(v))
        .unwrap();
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert_eq!(dev.devices.len(), 2);
    let disc = |name: &str, value: &str| {
        call(
            "iscsi.discovery_update",
            json!({"portal": PORTAL, "iface": "default", "name": name, "value": value}),
        )
    };
    let calls = p.calls();
    assert_eq!(
        calls[..10],
        [
            call("multipath.status", json!({})),
            call("iscsi.portal_nodes", json!({ "portal": PORTAL })),
            call(
                "iscsi.discovery_new",
                json!({"portal": PORTAL, "iface": "default"})
            ),
            disc("discovery.sendtargets.auth.authmethod", "CHAP"),
            disc("discovery.sendtargets.auth.username", "disc-user"),
            call(
                "iscsi.discovery_secret",
                json!({"portal": PORTAL, "key": "password", "secret": SECRET})
            ),
            disc("discovery.sendtargets.auth.username_in", "disc-tgt"),
            call(
                "iscsi.discovery_secret",
                json!({"portal": PORTAL, "key": "password_in", "secret": SECRET_IN})
            ),
            call(
                "iscsi.discovery_run",
                json!({"portal": PORTAL, "iface": "default"})
            ),
            call("iscsi.portal_nodes", json!({ "portal": PORTAL })),
        ]
    );
    // Nothing to restore: no record existed before. No plain discovery either.
    assert!(!op_names(&p).contains(&"iscsi.node_update".to_string()));
    assert!(!op_names(&p).contains(&"iscsi.discover".to_string()));
    for (op, args) in &calls {
        if op == "iscsi.discovery_secret" {
            continue;
        }
        let text = args.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains(SECRET_IN),
            "{op} {text}"
        );
    }
}

/// A failed sendtargets discovery is the error (node.startup still restored
/// first); no path is attempted.
#[test]
fn connect_multipath_discovery_failure_is_reported() {
    let env = setup();
    let p = Scripted::new()
        .expect("multipath.status", |_| exit(0))
        .expect("iscsi.portal_nodes", |_| {
            Ok(exec_reply(
                0,
                &node_records(&[(IQN, ADDR, "automatic")]),
                "",
            ))
        })
        .expect("iscsi.discover", |_| {
            exit_err(4, "iscsiadm: connection to discovery portal failed\n")
        })
        .expect("iscsi.portal_nodes", |_| {
            Ok(exec_reply(0, &node_records(&[(IQN, ADDR, "manual")]), ""))
        })
        .expect("iscsi.node_update", |_| exit(0));
    let events = ScriptedEvents::new();
    let err = mp_connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap_err();
    assert!(matches!(err, IscsiError::Target { .. }), "{err:?}");
    assert!(
        err.to_string().contains("sendtargets discovery failed"),
        "{err}"
    );
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert_eq!(p.calls().len(), 5);
}

// ---------------------------------------------------------------------------
// multipath detach

/// `multipath.flush` as device-mapper does it: the map goes away.
fn map_flush(
    t: Tree,
    dm: &'static str,
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + use<> {
    move |_| {
        t.remove_dm(dm);
        exit(0)
    }
}

/// `multipath.del_path`: multipathd reloads the map without the path (if the map
/// still exists).
fn del_path(
    t: Tree,
    dm: &'static str,
    name: &'static str,
) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + use<> {
    move |_| {
        if t.exists(&format!("sys/block/{dm}")) {
            t.remove_slave(dm, name);
        }
        exit(0)
    }
}

fn logout_calls(portal: &str) -> Vec<(String, Value)> {
    vec![
        startup_manual_call(IQN, portal),
        call("iscsi.logout", node(IQN, portal)),
        call("iscsi.node_delete", node(IQN, portal)),
    ]
}

/// A multipath detach, listed or not: every disk of the WWID (in any session) is
/// rescanned first, then the map is flushed (no per-path block flush), the paths
/// leave multipathd and the kernel, multipathd is asked whether it still monitors
/// them, and both sessions are logged out.
#[test]
fn disconnect_multipath_flushes_the_map_then_removes_the_paths() {
    for listing in ["both paths", "primary only"] {
        let env = setup();
        let (h1, h2, both) = two_paths_in_a_map(&env.tree);
        let pr = if listing == "both paths" {
            both
        } else {
            single(json!(1))
        };
        record(&env, "sdb", WWN, ino(&env, "sdb"));
        record(&env, "sdc", WWN, ino(&env, "sdc"));
        let t = &env.tree;
        let (s1, s2) = (t.clone(), t.clone());
        let p = Scripted::new()
            .expect("scsi.rescan", |_| done())
            .expect("scsi.rescan", |_| done())
            .expect("multipath.flush", map_flush(t.clone(), "dm-0"))
            .expect("multipath.del_path", del_path(t.clone(), "dm-0", "sdb"))
            .expect("multipath.del_path", del_path(t.clone(), "dm-0", "sdc"))
            .expect("scsi.delete", kernel_delete(t.clone(), h1))
            .expect("scsi.delete", kernel_delete(t.clone(), h2))
            .expect("multipath.paths", |_| Ok(exec_reply(0, "sda\n", "")))
            .expect("multipath.forget_wwid", |_| exit(0))
            .expect("iscsi.node_configure", |_| done())
            .expect("iscsi.logout", move |_| {
                s1.remove_session(1);
                exit(0)
            })
            .expect("iscsi.node_delete", |_| exit(0))
            .expect("iscsi.node_configure", |_| done())
            .expect("iscsi.logout", move |_| {
                s2.remove_session(2);
                exit(0)
            })
            .expect("iscsi.node_delete", |_| exit(0));
        let (u1, u2) = (t.clone(), t.clone());
        let events = ScriptedEvents::new()
            .then(move || u1.udev_remove("sdb", "8:16"))
            .then(move || u2.udev_remove("sdc", "8:32"));
        let out = connector(&env, &p, &events, LONG)
            .disconnect(&pr, &info(WWN), false, false)
            .unwrap();
        assert!(p.unused().is_empty(), "{listing}: {:?}", p.unused());
        let mut want = vec![
            call("scsi.rescan", by_wwid("sdb")),
            call("scsi.rescan", by_wwid("sdc")),
            call(
                "multipath.flush",
                json!({"device": "dm-0", "map": "mpatha", "expected_wwid": WWN}),
            ),
            call("multipath.del_path", by_wwid("sdb")),
            call("multipath.del_path", by_wwid("sdc")),
            call("scsi.delete", by_wwid("sdb")),
            call("scsi.delete", by_wwid("sdc")),
            call("multipath.paths", json!({})),
            // The wwids entry the attach added goes with the map.
            call("multipath.forget_wwid", json!({"wwid": WWN})),
        ];
        want.extend(logout_calls(PORTAL));
        want.extend(logout_calls(PORTAL2));
        assert_eq!(p.calls(), want, "{listing}");
        assert_eq!(
            out,
            DetachOutcome {
                status: "clean".into(),
                removed: vec!["sdb".into(), "sdc".into()],
                logged_out: vec![format!("{IQN}@{PORTAL}"), format!("{IQN}@{PORTAL2}")],
                ..DetachOutcome::default()
            },
            "{listing}"
        );
        assert!(registry(&env).all().is_empty(), "{listing}");
        assert!(!t.exists("sys/block/dm-0") && !t.exists("dev/mapper/mpatha"));
    }
}

/// multipathd still lists a removed path: reported as a leftover.
#[test]
fn disconnect_multipath_reports_paths_multipathd_still_monitors() {
    let env = setup();
    let (h1, h2, pr) = two_paths_in_a_map(&env.tree);
    let t = &env.tree;
    let (s1, s2) = (t.clone(), t.clone());
    let p = Scripted::new()
        .expect("scsi.rescan", |_| done())
        .expect("scsi.rescan", |_| done())
        .expect("multipath.flush", map_flush(t.clone(), "dm-0"))
        .expect("multipath.del_path", |_| exit_err(1, "fail\n"))
        .expect("multipath.del_path", |_| exit(0))
        .expect("scsi.delete", kernel_delete(t.clone(), h1))
        .expect("scsi.delete", kernel_delete(t.clone(), h2))
        .expect("multipath.paths", |_| Ok(exec_reply(0, "sda\n sdb \n", "")))
        .expect("multipath.forget_wwid", |_| exit(0))
        .expect("iscsi.node_configure", |_| done())
        .expect("iscsi.logout", move |_| {
            s1.remove_session(1);
            exit(0)
        })
        .expect("iscsi.node_delete", |_| exit(0))
        .expect("iscsi.node_configure", |_| done())
        .expect("iscsi.logout", move |_| {
            s2.remove_session(2);
            exit(0)
        })
        .expect("iscsi.node_delete", |_| exit(0));
    let (u1, u2) = (t.clone(), t.clone());
    let events = ScriptedEvents::new()
        .then(move || u1.udev_remove("sdb", "8:16"))
        .then(move || u2.udev_remove("sdc", "8:32"));
    let out = connector(&env, &p, &events, LONG)
        .disconnect(&pr, &info(WWN), false, true)
        .unwrap();
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert_eq!(out.status, "leftovers");
    assert_eq!(out.removed, ["sdb", "sdc"]);
    assert_eq!(
        out.leftovers,
        [Leftover {
            what: "multipathd path sdb".into(),
            reason: "multipathd still monitors the removed path".into(),
        }]
    );
}

/// The map cannot be flushed (in use) and there is no force: nothing is removed,
/// no path leaves multipathd or the kernel, no session is logged out.
#[test]
fn disconnect_multipath_map_flush_failure_without_force_removes_nothing() {
    let env = setup();
    let (_, _, pr) = two_paths_in_a_map(&env.tree);
    record(&env, "sdb", WWN, ino(&env, "sdb"));
    let before = env.tree.snapshot();
    let p = Scripted::new()
        .expect("scsi.rescan", |_| done())
        .expect("scsi.rescan", |_| done())
        .expect("multipath.flush", |_| exit_err(1, "mpatha: map in use\n"));
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .disconnect(&pr, &info(WWN), false, false)
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IscsiError::Target { .. }), "{err:?}");
    assert!(msg.contains("flushing /dev/dm-0 (mpatha) failed"), "{msg}");
    assert!(
        msg.contains("map in use") && msg.contains("nothing was removed"),
        "{msg}"
    );
    assert_eq!(
        op_names(&p),
        ["scsi.rescan", "scsi.rescan", "multipath.flush"]
    );
    assert_eq!(events.watches_opened(), 0);
    assert_eq!(env.tree.snapshot(), before);
    assert!(registry(&env).get("sdb").is_some());
}

/// With force the paths go anyway: the map is named in data_loss_risk and, still
/// present, as a leftover.
#[test]
fn disconnect_multipath_map_flush_failure_with_force_removes_the_paths() {
    let env = setup();
    let (h1, h2, pr) = two_paths_in_a_map(&env.tree);
    let t = &env.tree;
    let (s1, s2) = (t.clone(), t.clone());
    let p = Scripted::new()
        .expect("scsi.rescan", |_| done())
        .expect("scsi.rescan", |_| done())
        .expect("multipath.flush", |_| exit_err(1, "mpatha: map in use\n"))
        .expect("multipath.del_path", del_path(t.clone(), "dm-0", "sdb"))
        .expect("multipath.del_path", del_path(t.clone(), "dm-0", "sdc"))
        .expect("scsi.delete", kernel_delete(t.clone(), h1))
        .expect("scsi.delete", kernel_delete(t.clone(), h2))
        .expect("multipath.paths", |_| Ok(exec_reply(0, "", "")))
        .expect("iscsi.node_configure", |_| done())
        .expect("iscsi.logout", move |_| {
            s1.remove_session(1);
            exit(0)
        })
        .expect("iscsi.node_delete", |_| exit(0))
        .expect("iscsi.node_configure", |_| done())
        .expect("iscsi.logout", move |_| {
            s2.remove_session(2);
            exit(0)
        })
        .expect("iscsi.node_delete", |_| exit(0));
    let (u1, u2) = (t.clone(), t.clone());
    let events = ScriptedEvents::new()
        .then(move || u1.udev_remove("sdb", "8:16"))
        .then(move || u2.udev_remove("sdc", "8:32"));
    let err = connector(&env, &p, &events, LONG)
        .disconnect(&pr, &info(WWN), true, false)
        .unwrap_err();
    let IscsiError::Incomplete(out) = err else {
        panic!("expected Incomplete, got {err:?}");
    };
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    assert!(!op_names(&p).contains(&"block.flush".to_string()));
    assert_eq!(out.status, "leftovers");
    assert_eq!(out.data_loss_risk, ["/dev/dm-0 (mpatha)"]);
    assert_eq!(out.removed, ["sdb", "sdc"]);
    assert_eq!(out.leftovers.len(), 1, "{out:?}");
    assert_eq!(out.leftovers[0].what, "multipath map mpatha (/dev/dm-0)");
    assert!(
        out.leftovers[0].reason.contains("could not be flushed"),
        "{out:?}"
    );
    assert!(
        out.summary().contains("/dev/dm-0 (mpatha)"),
        "{}",
        out.summary()
    );
    assert!(t.exists("sys/block/dm-0"));
    assert!(t.slaves("dm-0").is_empty());
}

/// One path joined the map, the other never did (an attach only warns about
/// that). Without force a failed flush must remove nothing — also not the map —
/// so the paths' flushes must come before the map's `multipath -f`.
#[test]
fn disconnect_flush_failure_of_a_path_outside_the_map_keeps_the_map() {
    let env = setup();
    let (_, _, pr) = two_paths(&env.tree);
    env.tree
        .add_multipath_map("dm-0", "253:0", "mpatha", WWN, &["sdb"]);
    let before = env.tree.snapshot();
    let p = Scripted::new()
        .unordered()
        .expect("scsi.rescan", |_| done())
        .expect("scsi.rescan", |_| done())
        .expect("multipath.flush", map_flush(env.tree.clone(), "dm-0"))
        .expect_args("block.flush", by_wwid("sdc"), |_| {
            exit_err(1, "blockdev: I/O error\n")
        });
    let events = ScriptedEvents::new();
    let err = connector(&env, &p, &events, LONG)
        .disconnect(&pr, &info(WWN), false, false)
        .unwrap_err();
    assert!(err.to_string().contains("nothing was removed"), "{err}");
    assert!(
        !op_names(&p).contains(&"multipath.flush".to_string()),
        "{:?}",
        op_names(&p)
    );
    assert_eq!(env.tree.snapshot(), before);
}

/// multipathd is not running and the attach falls back to a single path: that
/// session has no map to fail over to, so it must keep iscsid's own
/// replacement_timeout (a 5 s one fails I/O on any short network outage).
#[test]
fn connect_multipath_fallback_keeps_the_default_replacement_timeout() {
    let env = setup();
    let (t1, t2) = (env.tree.clone(), env.tree.clone());
    let h = hctl("3:0:0:1");
    let p = Scripted::new().expect("multipath.status", |_| exit_err(1, "not running\n"));
    let p = expect_node_setup(p, true)
        .expect("iscsi.login", move |_| {
            t1.add_session(1, 3, IQN, ADDR, 3260, 0);
            exit(0)
        })
        .expect("scsi.scan", move |_| {
            t2.add_lun(1, h, "sdb", "8:16", RAW);
            done()
        });
    let events = ScriptedEvents::new();
    let dev = mp_connector(&env, &p, &events, LONG)
        .connect(&single(json!(1)))
        .unwrap();
    assert_eq!(dev.path, "/dev/sdb");
    let mut want = vec![call("multipath.status", json!({}))];
    want.extend(node_setup_calls(IQN, PORTAL, true));
    want.extend([
        call("iscsi.login", node(IQN, PORTAL)),
        call(
            "scsi.scan",
            json!({"host": 3, "channel": 0, "target": 0, "lun": 1}),
        ),
    ]);
    assert_eq!(p.calls(), want);
    assert!(
        !p.calls()
            .iter()
            .any(|(_, a)| a.to_string().contains("replacement_timeout")),
        "{:?}",
        p.calls()
    );
}

/// A non-default iface must exist: a missing one is refused before any node, login
/// or scan operation; an existing one is used for the node record.
#[test]
fn connect_checks_a_non_default_iface_first() {
    let env = setup();
    let before = env.tree.snapshot();
    let p = Scripted::new().expect("iscsi.iface_show", |_| {
        exit_err(2, "iscsiadm: Could not read iface nope (2)\n")
    });
    let events = ScriptedEvents::new();
    let mut c = connector(&env, &p, &events, Duration::from_secs(5));
    c.options.iface = "nope".parse().unwrap();
    let err = c.connect(&single(json!(1))).unwrap_err();
    assert!(
        err.to_string().contains("no such open-iscsi interface"),
        "{err}"
    );
    assert_eq!(
        p.calls(),
        [call("iscsi.iface_show", json!({"iface": "nope"}))]
    );
    assert_eq!(env.tree.snapshot(), before);
}
