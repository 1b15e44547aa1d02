//! The `moor` volume commands as a process, without root and without moord:
//! `connect`/`disconnect iscsi --dry-run` on an empty host root (the plan, secrets
//! redacted, refusals of bad input), and the read-only commands on fixture trees
//! (`connector-properties`, `paths iscsi`, `volumes`).
//!
//! Binary: `$MOOR_BIN`, or `target/debug/moor` built once with cargo.

mod cli_common;
mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use cli_common::{Run, moor_bin, op_names};
use serde_json::{Value, json};

const IQN: &str = "iqn.2010-10.org.openstack:volume-1";
const PORTAL: &str = "192.0.2.10:3260";
const SECRET: &str = "Pa55-w0rd-one";
const SECRET_IN: &str = "Pa55-w0rd-two";
const DISCOVERY_SECRET: &str = "Pa55-w0rd-disc";

/// `moor ARGS…` with no socket or key from the environment (a dry run must not
/// need either), stdin closed.
fn moor(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let out: Output = Command::new(moor_bin())
        .args(args)
        .env_remove("MOOR_KEY_FILE")
        .env("MOOR_SOCKET", dir.path().join("no-moord.sock"))
        .env("MOOR_LOG", "debug")
        .stdin(Stdio::null())
        .output()
        .expect("run moor");
    Run::from(out)
}

/// A scratch directory: an empty host root, lock and attachment directories.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("root")).expect("mkdir root");
        Scratch { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.path(rel)
            .to_str()
            .expect("UTF-8 temp path")
            .to_string()
    }

    /// Writes `v` as JSON to `<dir>/<name>` and returns the path.
    fn json_file(&self, name: &str, v: &Value) -> String {
        std::fs::write(self.path(name), serde_json::to_vec(v).expect("JSON"))
            .expect("write JSON file");
        self.s(name)
    }

    /// `moor <verb> iscsi --dry-run …` with the scratch directories and `extra`.
    fn dry_run(&self, verb: &str, props: &str, extra: &[&str]) -> Run {
        self.dry_run_of("iscsi", verb, props, extra)
    }

    /// `moor <verb> <protocol> --dry-run …` with the scratch directories and `extra`.
    fn dry_run_of(&self, protocol: &str, verb: &str, props: &str, extra: &[&str]) -> Run {
        let (root, locks, att) = (self.s("root"), self.s("locks"), self.s("attachments"));
        let mut args = vec![
            verb,
            protocol,
            "--dry-run",
            "--host-root",
            &root,
            "--lock-dir",
            &locks,
            "--attachments-dir",
            &att,
            "--properties",
            props,
        ];
        args.extend_from_slice(extra);
        moor(&args)
    }
}

/// The connection `data` of a volume with mutual CHAP and discovery CHAP.
fn chap_data() -> Value {
    json!({
        "target_portal": PORTAL,
        "target_iqn": IQN,
        "target_lun": 1,
        "volume_id": "0a5b5b8e-1111-4222-8333-944444444444",
        "auth_method": "CHAP",
        "auth_username": "user1",
        "auth_password": SECRET,
        "auth_username_in": "tgtuser",
        "auth_password_in": SECRET_IN,
        "discovery_auth_method": "CHAP",
        "discovery_auth_username": "disc",
        "discovery_auth_password": DISCOVERY_SECRET,
    })
}

fn assert_no_secrets(r: &Run) {
    for secret in [SECRET, SECRET_IN, DISCOVERY_SECRET] {
        assert!(!r.stdout.contains(secret), "{secret} in stdout:\n{r}");
        assert!(!r.stderr.contains(secret), "{secret} in stderr:\n{r}");
    }
}

// ---------------------------------------------------------------------------
// connect --dry-run

/// Cinder's connection_info (with the `driver_volume_type`/`data` wrapper) and its
/// bare `data` give the same plan: the node record set up, the login, then a stop
/// (nothing after it can be planned without a session). Secrets are shown
/// redacted, never in clear, on stdout or in the logs.
#[test]
fn connect_dry_run_plans_the_login_with_secrets_redacted() {
    let mut plans = Vec::new();
    for wrapped in [true, false] {
        let s = Scratch::new();
        let v = if wrapped {
            json!({"driver_volume_type": "iscsi", "data": chap_data()})
        } else {
            chap_data()
        };
        let props = s.json_file("ci.json", &v);
        let r = s.dry_run("connect", &props, &[]);
        assert_eq!(r.code, Some(0), "{r}");
        let plan = r.json();
        assert_eq!(plan["dry_run"], json!(true), "{r}");
        let ops = op_names(&plan);
        assert!(ops.iter().any(|o| o == "iscsi.node_new"), "{ops:?}");
        let login = ops.iter().position(|o| o == "iscsi.login");
        let node_new = ops.iter().position(|o| o == "iscsi.node_new");
        assert!(login.is_some() && node_new < login, "{ops:?}");
        let text = plan["operations"].to_string();
        assert!(text.contains(IQN) && text.contains("192.0.2.10"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(plan["stopped"].is_string(), "{r}");
        assert_no_secrets(&r);
        // Nothing attached, nothing recorded.
        assert!(!s.path("attachments").exists(), "{r}");
        plans.push(plan["operations"].clone());
    }
    assert_eq!(plans[0], plans[1]);
}

/// `-` reads the connection_info from stdin.
#[test]
fn connect_dry_run_reads_properties_from_stdin() {
    let s = Scratch::new();
    let (root, locks, att) = (s.s("root"), s.s("locks"), s.s("attachments"));
    let mut child = Command::new(moor_bin())
        .args([
            "connect",
            "iscsi",
            "--dry-run",
            "--host-root",
            &root,
            "--lock-dir",
            &locks,
            "--attachments-dir",
            &att,
            "--properties",
            "-",
        ])
        .env_remove("MOOR_KEY_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run moor");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(&serde_json::to_vec(&chap_data()).unwrap())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(
        op_names(&r.json()).iter().any(|o| o == "iscsi.login"),
        "{r}"
    );
    assert_no_secrets(&r);
}

/// Invalid connection properties: exit 1, a message naming the key, no plan.
#[test]
fn connect_invalid_properties_name_the_key_and_plan_nothing() {
    let base = json!({"target_portal": PORTAL, "target_iqn": IQN, "target_lun": 1});
    let with = |k: &str, v: Value| {
        let mut o = base.clone();
        o[k] = v;
        o
    };
    let without = |k: &str| {
        let mut o = base.clone();
        o.as_object_mut().unwrap().remove(k);
        o
    };
    let cases = [
        ("target_lun", with("target_lun", json!("abc"))),
        ("target_iqn", without("target_iqn")),
        (
            "target_portal",
            with("target_portal", json!("[2001:db8::1")),
        ),
        (
            "driver_volume_type",
            json!({"driver_volume_type": "fibre_channel", "data": base.clone()}),
        ),
        (
            "auth_password",
            json!({
                "target_portal": PORTAL, "target_iqn": IQN, "target_lun": 1,
                "auth_method": "CHAP", "auth_username": "user1",
            }),
        ),
    ];
    for (key, v) in cases {
        let s = Scratch::new();
        let props = s.json_file("ci.json", &v);
        let r = s.dry_run("connect", &props, &[]);
        assert_eq!(r.code, Some(1), "{key}: {r}");
        assert!(r.stderr.contains(key), "{key}: {r}");
        assert!(!r.stdout.contains("operations"), "{key}: {r}");
        assert!(r.stdout.trim().is_empty(), "{key}: {r}");
        // Refused before any lock was taken.
        assert!(!s.path("locks").exists(), "{key}: {r}");
    }
    // The wrong protocol is named too.
    let s = Scratch::new();
    let props = s.json_file(
        "ci.json",
        &json!({"driver_volume_type": "fibre_channel", "data": base}),
    );
    let r = s.dry_run("connect", &props, &[]);
    assert!(r.stderr.contains("fibre_channel"), "{r}");
}

#[test]
fn connect_properties_that_are_not_json_are_refused() {
    let s = Scratch::new();
    std::fs::write(s.path("ci.json"), "target_lun = 1\n").unwrap();
    let r = s.dry_run("connect", &s.s("ci.json"), &[]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("not JSON"), "{r}");
    assert!(r.stdout.is_empty(), "{r}");
}

/// An invalid value is described once: the cause is not repeated by the error
/// chain (`connection property target_lun: invalid LUN "abc": …` printed twice).
#[test]
fn connect_invalid_value_message_is_not_repeated() {
    let s = Scratch::new();
    let props = s.json_file(
        "ci.json",
        &json!({"target_portal": PORTAL, "target_iqn": IQN, "target_lun": "abc"}),
    );
    let r = s.dry_run("connect", &props, &[]);
    assert_eq!(r.code, Some(1), "{r}");
    assert_eq!(r.stderr.matches("not a decimal number").count(), 1, "{r}");
}

// ---------------------------------------------------------------------------
// disconnect --dry-run

/// A device_info without scsi_wwn is refused: moor does not remove devices it
/// cannot identify. Nothing is planned.
#[test]
fn disconnect_dry_run_without_scsi_wwn_is_refused() {
    for info in [
        json!({"type": "block", "path": "/dev/sdb"}),
        json!({"type": "block", "path": "/dev/sdb", "scsi_wwn": ""}),
    ] {
        let s = Scratch::new();
        let props = s.json_file("ci.json", &chap_data());
        let di = s.json_file("device_info.json", &info);
        let r = s.dry_run("disconnect", &props, &["--device-info", &di]);
        assert_eq!(r.code, Some(1), "{info}: {r}");
        assert!(r.stderr.contains("scsi_wwn"), "{info}: {r}");
        assert!(!r.stdout.contains("operations"), "{info}: {r}");
        assert_no_secrets(&r);
    }
}

/// With the WWID but nothing attached on the (empty) host: nothing to remove or
/// log out of; the plan only deletes the listed target's node record.
#[test]
fn disconnect_dry_run_of_a_volume_not_attached_only_deletes_the_record() {
    let s = Scratch::new();
    let props = s.json_file("ci.json", &chap_data());
    let di = s.json_file(
        "device_info.json",
        &json!({"type": "block", "path": "/dev/sdb",
                "scsi_wwn": "3600a09803830447a4f244c4657616f6f"}),
    );
    let r = s.dry_run("disconnect", &props, &["--device-info", &di]);
    assert_eq!(r.code, Some(0), "{r}");
    let plan = r.json();
    assert_eq!(plan["dry_run"], json!(true), "{r}");
    // No session, no disk: only the listed target's node record is cleaned up.
    assert_eq!(op_names(&plan), ["iscsi.node_delete"], "{r}");
    assert_no_secrets(&r);
}

// ---------------------------------------------------------------------------
// nvmeof --dry-run

const NQN: &str = "nqn.2014-08.org.moor.test:nvme-1";
const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:9126e942-396d-11e7-b0b7-a81e84c186d1";

fn nvme_data() -> Value {
    json!({"target_nqn": NQN, "vol_uuid": "c20aba21-6ef6-446b-b374-45733b4883ba", "ns_id": 1,
           "portals": [["192.0.2.20", 4420, "tcp"], ["192.0.2.21", "4420", "TCP"]],
           "volume_id": "0a5b5b8e-1111-4222-8333-944444444444"})
}

/// A host with its NVMe identity: the plan connects the first portal (without
/// --multipath) with the host's NQN and id, and stops (the namespace is looked up
/// on the controller the connect creates).
#[test]
fn nvmeof_connect_dry_run_plans_the_connect() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("root/etc/nvme")).expect("mkdir");
    std::fs::write(s.path("root/etc/nvme/hostnqn"), format!("{HOSTNQN}\n")).expect("write");
    std::fs::write(
        s.path("root/etc/nvme/hostid"),
        "9126e942-396d-11e7-b0b7-a81e84c186d1\n",
    )
    .expect("write");
    let props = s.json_file(
        "ci.json",
        &json!({"driver_volume_type": "nvmeof", "data": nvme_data()}),
    );
    let r = s.dry_run_of("nvmeof", "connect", &props, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    let plan = r.json();
    assert_eq!(op_names(&plan), ["nvme.connect"], "{r}");
    let text = plan["operations"].to_string();
    assert!(
        text.contains(NQN) && text.contains("192.0.2.20") && text.contains(HOSTNQN),
        "{text}"
    );
    assert!(plan["stopped"].is_string(), "{r}");
    // Multipath: both portals.
    let r = s.dry_run_of("nvmeof", "connect", &props, &["--multipath"]);
    let ops = op_names(&r.json());
    assert_eq!(ops, ["nvme.connect", "nvme.connect"], "{r}");
    assert!(!s.path("root/sys").exists());
}

/// Bad NVMe-oF connection info names the key and plans nothing: an NQN with a
/// comma (it would inject connect options), no identifier, the wrong
/// driver_volume_type.
#[test]
fn nvmeof_connect_refuses_bad_properties() {
    let s = Scratch::new();
    let mut comma = nvme_data();
    comma["target_nqn"] = json!("nqn.2014-08.org.moor.test:a,hostnqn=x");
    let mut anonymous = nvme_data();
    let o = anonymous.as_object_mut().expect("object");
    o.remove("vol_uuid");
    o.remove("ns_id");
    for (v, needle) in [
        (comma, "target_nqn"),
        (anonymous, "identif"),
        (
            json!({"driver_volume_type": "iscsi", "data": nvme_data()}),
            "driver_volume_type",
        ),
    ] {
        let props = s.json_file("ci.json", &v);
        let r = s.dry_run_of("nvmeof", "connect", &props, &[]);
        assert_eq!(r.code, Some(1), "{v}: {r}");
        assert!(r.stderr.contains(needle), "{needle}: {r}");
        assert!(!r.stdout.contains("operations"), "{r}");
    }
}

/// A device_info without a namespace identifier is refused before anything runs;
/// with one but nothing attached, the detach plans nothing.
#[test]
fn nvmeof_disconnect_needs_the_recorded_identity() {
    let s = Scratch::new();
    let props = s.json_file("ci.json", &nvme_data());
    let di = s.json_file(
        "di.json",
        &json!({"type": "block", "path": "/dev/nvme0n1", "subsysnqn": NQN}),
    );
    let r = s.dry_run_of("nvmeof", "disconnect", &props, &["--device-info", &di]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("no namespace identifier"), "{r}");
    let di = s.json_file(
        "di.json",
        &json!({"type": "block", "path": "/dev/nvme0n1", "subsysnqn": NQN,
                "uuid": "c20aba21-6ef6-446b-b374-45733b4883ba", "nsid": 1}),
    );
    let r = s.dry_run_of("nvmeof", "disconnect", &props, &["--device-info", &di]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(op_names(&r.json()).is_empty(), "{r}");
}

// ---------------------------------------------------------------------------
// fibre_channel --dry-run

/// A host root with one online FC HBA (`host5`, port 100010604b019419) that sees
/// target port 20210002ac00383d as SCSI target 0:0, laid out as
/// scsi_transport_fc does (class links into the device tree).
fn fc_host_root(s: &Scratch) {
    let dev = "root/sys/devices/pci0000:00/0000:00:03.0/0000:05:00.2/host5";
    let put = |rel: &str, text: &str| {
        let p = s.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    let link = |at: &str, to: &str| {
        let at = s.path(at);
        std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(s.path(to), at).expect("symlink");
    };
    put(
        &format!("{dev}/fc_host/host5/port_name"),
        "0x100010604b019419\n",
    );
    put(&format!("{dev}/fc_host/host5/port_state"), "Online\n");
    put(&format!("{dev}/scsi_host/host5/scan"), "");
    let rport = format!("{dev}/rport-5:0-2");
    put(
        &format!("{rport}/fc_remote_ports/rport-5:0-2/port_name"),
        "0x20210002ac00383d\n",
    );
    put(
        &format!("{rport}/fc_remote_ports/rport-5:0-2/port_state"),
        "Online\n",
    );
    put(
        &format!("{rport}/fc_remote_ports/rport-5:0-2/scsi_target_id"),
        "0\n",
    );
    put(
        &format!("{rport}/target5:0:0/fc_transport/target5:0:0/port_name"),
        "0x20210002ac00383d\n",
    );
    link(
        "root/sys/class/fc_host/host5",
        &format!("{dev}/fc_host/host5"),
    );
    link(
        "root/sys/class/fc_remote_ports/rport-5:0-2",
        &format!("{rport}/fc_remote_ports/rport-5:0-2"),
    );
    link(
        "root/sys/class/fc_transport/target5:0:0",
        &format!("{rport}/target5:0:0/fc_transport/target5:0:0"),
    );
}

/// The plan scans exactly the LUN's address on the HBA that sees the port (never
/// a wildcard), then stops: the disk it creates is needed next.
#[test]
fn fibre_channel_connect_dry_run_plans_a_targeted_scan() {
    let s = Scratch::new();
    fc_host_root(&s);
    let props = s.json_file(
        "ci.json",
        &json!({"driver_volume_type": "fibre_channel", "data": {
            "target_wwn": "20210002AC00383D", "target_lun": "3"}}),
    );
    let r = s.dry_run_of("fibre-channel", "connect", &props, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    let plan = r.json();
    assert_eq!(op_names(&plan), ["scsi.scan"], "{r}");
    let text = plan["operations"].to_string();
    assert!(
        text.contains("host: 5") && text.contains("target: 0") && text.contains("lun: 3"),
        "{text}"
    );
    assert!(plan["stopped"].is_string(), "{r}");
    // A port no HBA sees: an error naming it, nothing planned.
    let props = s.json_file(
        "ci.json",
        &json!({"target_wwn": "5000000000000009", "target_lun": 1}),
    );
    let r = s.dry_run_of("fibre-channel", "connect", &props, &[]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("5000000000000009"), "{r}");
    // Without an HBA at all.
    let bare = Scratch::new();
    let r = bare.dry_run_of("fibre-channel", "connect", &props, &[]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("no online Fibre Channel HBA"), "{r}");
}

/// An s390x host root: zFCP adapter 0.0.1900 (not NPIV) as host0, online; with
/// `port_open`, zfcp has opened DS8000 port 0x500507630b1b41c3 (SCSI target
/// 0:0:0) but has no unit yet, as zfcp lays it out.
fn zfcp_host_root(s: &Scratch, port_open: bool) {
    let dev = "root/sys/devices/css0/0.0.0019/0.0.1900";
    let put = |rel: &str, text: &str| {
        let p = s.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    let link = |at: &str, to: &str| {
        let at = s.path(at);
        std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(s.path(to), at).expect("symlink");
    };
    put(&format!("{dev}/online"), "1\n");
    put(&format!("{dev}/port_rescan"), "");
    put(
        &format!("{dev}/host0/fc_host/host0/port_name"),
        "0xc05076ffe5005611\n",
    );
    put(&format!("{dev}/host0/fc_host/host0/port_state"), "Online\n");
    put(
        &format!("{dev}/host0/fc_host/host0/port_type"),
        "NPort (fabric via point-to-point)\n",
    );
    link(
        "root/sys/class/fc_host/host0",
        &format!("{dev}/host0/fc_host/host0"),
    );
    link("root/sys/bus/ccw/drivers/zfcp/0.0.1900", dev);
    if port_open {
        put(&format!("{dev}/0x500507630b1b41c3/unit_add"), "");
        let rport = format!("{dev}/host0/rport-0:0-0");
        let rp = format!("{rport}/fc_remote_ports/rport-0:0-0");
        put(&format!("{rp}/port_name"), "0x500507630b1b41c3\n");
        put(&format!("{rp}/port_state"), "Online\n");
        put(&format!("{rp}/scsi_target_id"), "0\n");
        let tc = format!("{rport}/target0:0:0/fc_transport/target0:0:0");
        put(&format!("{tc}/port_name"), "0x500507630b1b41c3\n");
        link("root/sys/class/fc_remote_ports/rport-0:0-0", &rp);
        link("root/sys/class/fc_transport/target0:0:0", &tc);
    }
}

/// zFCP: a port the adapter has not opened is scanned for (`zfcp.port_rescan`);
/// an opened one gets its unit with the kernel's FCP LUN (`zfcp.unit_add`), given
/// as a Linux LUN or as the FCP LUN itself.
#[test]
fn zfcp_connect_dry_run_plans_port_scan_and_unit() {
    let s = Scratch::new();
    zfcp_host_root(&s, false);
    let props = s.json_file(
        "ci.json",
        &json!({"target_wwn": "500507630b1b41c3", "target_lun": 1_074_413_600_u64}),
    );
    let r = s.dry_run_of("fibre-channel", "connect", &props, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(op_names(&r.json()), ["zfcp.port_rescan"], "{r}");
    let s = Scratch::new();
    zfcp_host_root(&s, true);
    for lun in [json!(1_074_413_600_u64), json!("0x4020400a00000000")] {
        let props = s.json_file(
            "ci.json",
            &json!({"target_wwn": "500507630b1b41c3", "target_lun": lun}),
        );
        let r = s.dry_run_of("fibre-channel", "connect", &props, &[]);
        assert_eq!(r.code, Some(0), "{r}");
        let plan = r.json();
        assert_eq!(op_names(&plan), ["zfcp.unit_add"], "{r}");
        let text = plan["operations"].to_string();
        assert!(
            text.contains("4020400a00000000") && text.contains("0.0.1900"),
            "{text}"
        );
    }
}

/// Detach refuses a device_info without scsi_wwn; with one and no disk of it,
/// nothing is planned.
#[test]
fn fibre_channel_disconnect_needs_the_wwid() {
    let s = Scratch::new();
    fc_host_root(&s);
    let props = s.json_file(
        "ci.json",
        &json!({"target_wwn": "20210002ac00383d", "target_lun": 3}),
    );
    let di = s.json_file("di.json", &json!({"type": "block", "path": "/dev/sdc"}));
    let r = s.dry_run_of(
        "fibre-channel",
        "disconnect",
        &props,
        &["--device-info", &di],
    );
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("scsi_wwn"), "{r}");
    let di = s.json_file(
        "di.json",
        &json!({"type": "block", "path": "/dev/sdc", "scsi_wwn": "360002ac0000000000000000000013a1b"}),
    );
    let r = s.dry_run_of(
        "fibre-channel",
        "disconnect",
        &props,
        &["--device-info", &di],
    );
    assert_eq!(r.code, Some(0), "{r}");
    assert!(op_names(&r.json()).is_empty(), "{r}");
}

// ---------------------------------------------------------------------------
// read-only commands on fixture trees

#[test]
fn connector_properties_reads_initiator_and_host() {
    let s = Scratch::new();
    let root = s.path("root");
    std::fs::create_dir_all(root.join("etc/iscsi")).unwrap();
    std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
    std::fs::write(
        root.join("etc/iscsi/initiatorname.iscsi"),
        "## generated\nInitiatorName=iqn.1993-08.org.debian:01:abc\n",
    )
    .unwrap();
    std::fs::write(root.join("proc/sys/kernel/hostname"), "compute-1\n").unwrap();
    let r = moor(&[
        "connector-properties",
        "--host-root",
        &s.s("root"),
        "--multipath",
        "--ip",
        "198.51.100.7",
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    let p = r.json();
    assert_eq!(
        p["initiator"],
        json!("iqn.1993-08.org.debian:01:abc"),
        "{r}"
    );
    assert_eq!(p["host"], json!("compute-1"), "{r}");
    assert_eq!(p["ip"], json!("198.51.100.7"), "{r}");
    assert_eq!(p["multipath"], json!(true), "{r}");
    assert_eq!(p["os_type"], json!("linux"), "{r}");
}

#[test]
fn paths_lists_the_volumes_by_path_links() {
    let s = Scratch::new();
    let root = s.path("root");
    let by_path = root.join("dev/disk/by-path");
    std::fs::create_dir_all(&by_path).unwrap();
    std::fs::write(root.join("dev/sdb"), "").unwrap();
    std::fs::write(root.join("dev/sdc"), "").unwrap();
    let ours = format!("ip-{PORTAL}-iscsi-{IQN}-lun-1");
    std::os::unix::fs::symlink("../../sdb", by_path.join(&ours)).unwrap();
    // Another LUN of the same target.
    std::os::unix::fs::symlink(
        "../../sdc",
        by_path.join(format!("ip-{PORTAL}-iscsi-{IQN}-lun-2")),
    )
    .unwrap();
    let props = s.json_file(
        "ci.json",
        &json!({"driver_volume_type": "iscsi",
                "data": {"target_portal": PORTAL, "target_iqn": IQN, "target_lun": 1}}),
    );
    let r = moor(&[
        "paths",
        "iscsi",
        "--host-root",
        &s.s("root"),
        "--lock-dir",
        &s.s("locks"),
        "--attachments-dir",
        &s.s("attachments"),
        "--properties",
        &props,
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(
        r.json(),
        json!([format!("/dev/disk/by-path/{ours}")]),
        "{r}"
    );
}

#[test]
fn volumes_lists_the_attachment_records() {
    let s = Scratch::new();
    let dir = s.path("attachments");
    std::fs::create_dir_all(&dir).unwrap();
    let record = json!({
        "device": "sdb",
        "wwid": "3600a09803830447a4f244c4657616f6f",
        "sysfs_ino": 4242,
        "protocol": "iscsi",
        "target": format!("{IQN}@{PORTAL} lun 1"),
        "attached_at": 1_700_000_000u64,
    });
    std::fs::write(dir.join("sdb.json"), serde_json::to_vec(&record).unwrap()).unwrap();
    let r = moor(&["volumes", "--attachments-dir", &s.s("attachments")]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.json(), json!([record]), "{r}");
    // No directory at all: an empty list.
    let r = moor(&["volumes", "--attachments-dir", &s.s("nothing-here")]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.json(), json!([]), "{r}");
}
