//! `moor connect|disconnect|extend|paths fibre_channel_eckd` as a process, without
//! root and without moord: dry runs (`--dry-run --host-root`) on s390x host trees
//! laid out as the kernel and udev make them (see
//! connector/src/transport/dasd/test_support.rs for the layout), for a DASD that is
//! formatted and online, offline, on the cio_ignore list, unformatted, a PAV alias,
//! or carrying another uid; and refusals of bad input that plan nothing.
//!
//! Binary: `$MOOR_BIN`, or `target/debug/moor` built once with cargo.

mod cli_common;
mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cli_common::{Run, moor_bin, op_names};
use serde_json::{Value, json};

const BUSID: &str = "0.0.b100";
const UID: &str = "IBM.750000000DXP71.2300.05";
const ALIAS_UID: &str = "IBM.750000000DXP71.2300.xx";
/// A 3390-9 formatted with 4 KiB blocks, in 512-byte sectors.
const SECTORS: u64 = 10017 * 15 * 12 * 8;

/// The state of DASD 0.0.b100 on the fixture host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// On the cio_ignore list: no CCW device yet.
    Ignored,
    Offline,
    Online,
    OnlineUnformatted,
}

/// An s390x host root: the IPL DASD 0.0.0150 (dasda, online), DASD 0.0.b100 in
/// `state`, the HyperPAV alias 0.0.b1fe (online), everything else ignored.
struct Host {
    dir: tempfile::TempDir,
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

/// `link` -> `to`, relative as sysfs and udev make them.
fn rel_link(link: &Path, to: &Path) {
    let from: Vec<_> = link.parent().expect("parent").components().collect();
    let to_c: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to_c).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to_c[common..] {
        rel.push(c);
    }
    fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
    symlink(rel, link).expect("symlink");
}

impl Host {
    fn new(state: State) -> Host {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = Host { dir };
        for d in ["root/sys", "root/dev", "root/run", "locks", "attachments"] {
            fs::create_dir_all(h.path(d)).expect("mkdir");
        }
        h.dasd(
            "0.0.0150",
            "0.0.0000",
            "dasda",
            0,
            "IBM.750000000DXP71.1500.20",
            true,
            true,
        );
        h.dasd("0.0.b1fe", "0.0.0024", "dasdc", 8, ALIAS_UID, true, true);
        let mut ignored = vec!["0.0.0000-0.0.014f", "0.0.0151-0.0.b0ff"];
        match state {
            State::Ignored => ignored.push("0.0.b100-0.0.b1fd"),
            State::Offline => {
                h.dasd(BUSID, "0.0.0023", "dasdb", 4, UID, false, true);
                ignored.push("0.0.b101-0.0.b1fd");
            }
            State::Online | State::OnlineUnformatted => {
                h.dasd(
                    BUSID,
                    "0.0.0023",
                    "dasdb",
                    4,
                    UID,
                    true,
                    state == State::Online,
                );
                ignored.push("0.0.b101-0.0.b1fd");
            }
        }
        ignored.extend(["0.0.b1ff-0.0.ffff", "0.1.0000-0.1.ffff"]);
        write(
            &h.path("root/proc/cio_ignore"),
            &(ignored.join("\n") + "\n"),
        );
        h
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

    /// A DASD as the common I/O layer, the DASD driver and udev show it.
    #[allow(clippy::too_many_arguments)]
    fn dasd(
        &self,
        busid: &str,
        schid: &str,
        disk: &str,
        minor: u32,
        uid: &str,
        online: bool,
        formatted: bool,
    ) {
        let r = self.path("root");
        let dev = r.join(format!("sys/devices/css0/{schid}/{busid}"));
        let alias = uid.ends_with(".xx");
        let status = match (online, formatted) {
            (false, _) => "unknown",
            (true, true) => "online",
            (true, false) => "unformatted",
        };
        for (k, v) in [
            ("online", if online { "1" } else { "0" }),
            ("cutype", "3990/e9"),
            ("devtype", "3390/0c"),
            ("availability", "good"),
            ("status", status),
            ("uid", if online { uid } else { "" }),
            ("alias", if online && alias { "1" } else { "0" }),
            ("vendor", if online { "IBM" } else { "" }),
            ("discipline", if online { "ECKD" } else { "none" }),
        ] {
            write(&dev.join(k), &format!("{v}\n"));
        }
        rel_link(
            &dev.join("driver"),
            &r.join("sys/bus/ccw/drivers/dasd-eckd"),
        );
        rel_link(
            &r.join(format!("sys/bus/ccw/drivers/dasd-eckd/{busid}")),
            &dev,
        );
        rel_link(&r.join(format!("sys/bus/ccw/devices/{busid}")), &dev);
        if !online || alias {
            return;
        }
        let block = dev.join("block").join(disk);
        let size = if formatted { SECTORS } else { 0 };
        write(&block.join("dev"), &format!("94:{minor}\n"));
        write(&block.join("size"), &format!("{size}\n"));
        rel_link(&r.join(format!("sys/block/{disk}")), &block);
        write(&r.join(format!("run/udev/data/b94:{minor}")), "");
        write(&r.join(format!("dev/{disk}")), "");
        rel_link(
            &r.join(format!("dev/disk/by-path/ccw-{busid}")),
            &r.join(format!("dev/{disk}")),
        );
        if formatted {
            rel_link(
                &r.join(format!("dev/disk/by-id/ccw-{uid}")),
                &r.join(format!("dev/{disk}")),
            );
            let part = format!("{disk}1");
            write(
                &block.join(&part).join("dev"),
                &format!("94:{}\n", minor + 1),
            );
            write(&block.join(&part).join("partition"), "1\n");
            write(&r.join(format!("run/udev/data/b94:{}", minor + 1)), "");
            write(&r.join(format!("dev/{part}")), "");
            rel_link(
                &r.join(format!("dev/disk/by-path/ccw-{busid}-part1")),
                &r.join(format!("dev/{part}")),
            );
        }
    }

    fn json_file(&self, name: &str, v: &Value) -> String {
        fs::write(self.path(name), serde_json::to_vec(v).expect("JSON")).expect("write");
        self.s(name)
    }

    /// `moor <verb> <protocol> [--dry-run] --host-root … --properties FILE extra…`.
    fn moor(&self, verb: &str, protocol: &str, dry: bool, props: &Value, extra: &[&str]) -> Run {
        let props = self.json_file("ci.json", props);
        let (root, locks, att) = (self.s("root"), self.s("locks"), self.s("attachments"));
        let mut args = vec![verb, protocol];
        if dry {
            args.push("--dry-run");
        }
        args.extend([
            "--host-root",
            &root,
            "--lock-dir",
            &locks,
            "--attachments-dir",
            &att,
            "--properties",
            &props,
        ]);
        args.extend_from_slice(extra);
        let out = Command::new(moor_bin())
            .args(&args)
            .env_remove("MOOR_KEY_FILE")
            .env("MOOR_SOCKET", self.path("no-moord.sock"))
            .env("MOOR_LOG", "debug")
            .stdin(Stdio::null())
            .output()
            .expect("run moor");
        Run::from(out)
    }

    /// Every file and link under the host root, for "nothing changed".
    fn snapshot(&self) -> Vec<String> {
        fn walk(dir: &Path, out: &mut Vec<String>) {
            let Ok(rd) = fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                let p = e.path();
                let m = fs::symlink_metadata(&p).expect("stat");
                if m.file_type().is_symlink() {
                    out.push(format!("{} -> {:?}", p.display(), fs::read_link(&p).ok()));
                } else if m.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(format!(
                        "{} = {:?}",
                        p.display(),
                        fs::read_to_string(&p).ok()
                    ));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path("root"), &mut out);
        out.sort();
        out
    }
}

fn wrapped(data: Value) -> Value {
    json!({"driver_volume_type": "fibre_channel_eckd", "data": data})
}

#[test]
fn connect_dry_run_plans_what_the_dasd_needs() {
    for (state, props, ops, stopped) in [
        // Formatted and online: nothing to do.
        (
            State::Online,
            json!({"device_id": BUSID, "uid": UID}),
            vec![],
            false,
        ),
        // Offline: set online, then the uid and format are read.
        (
            State::Offline,
            json!({"device_id": "b100"}),
            vec!["dasd.online"],
            true,
        ),
        // Ignored: freed from cio_ignore, then set online.
        (
            State::Ignored,
            json!({"bus_id": BUSID}),
            vec!["dasd.free", "dasd.online"],
            true,
        ),
        // Unformatted, formatting asked for: dasdfmt planned (and fdasd).
        (
            State::OnlineUnformatted,
            json!({"busid": BUSID, "format_if_unformatted": true, "partition_after_format": true}),
            vec!["dasd.format", "dasd.partition"],
            true,
        ),
    ] {
        let h = Host::new(state);
        let before = h.snapshot();
        let r = h.moor(
            "connect",
            "fibre_channel_eckd",
            true,
            &wrapped(props.clone()),
            &[],
        );
        assert_eq!(r.code, Some(0), "{state:?}: {r}");
        let plan = r.json();
        assert_eq!(plan["dry_run"], true);
        assert_eq!(op_names(&plan), ops, "{state:?}: {r}");
        assert_eq!(plan["stopped"].is_string(), stopped, "{state:?}: {r}");
        // Bus ids and uids appear as the kernel prints them.
        let text = plan["operations"].to_string();
        if !ops.is_empty() {
            assert!(text.contains("busid: 0.0.b100"), "{text}");
        }
        if state == State::OnlineUnformatted {
            assert!(
                text.contains("device: dasdb") && text.contains(&format!("expected_uid: {UID}")),
                "{text}"
            );
        }
        assert_eq!(
            h.snapshot(),
            before,
            "{state:?}: a dry run changed the host"
        );
        assert!(
            fs::read_dir(h.path("attachments"))
                .expect("dir")
                .next()
                .is_none(),
            "a dry run recorded an attachment"
        );
    }
}

#[test]
fn connect_refuses_what_is_not_this_volume_and_plans_nothing() {
    for (state, protocol, props, needle) in [
        (
            State::OnlineUnformatted,
            "fibre_channel_eckd",
            json!({"device_id": BUSID}),
            "0.0.b100 (/dev/dasdb) is unformatted: set format_if_unformatted",
        ),
        (
            State::Online,
            "dasd",
            json!({"device_id": "0.0.b1fe"}),
            "0.0.b1fe is a PAV alias device (uid IBM.750000000DXP71.2300.xx), not a volume",
        ),
        (
            State::Online,
            "fibre-channel-eckd",
            json!({"device_id": BUSID, "uid": "IBM.750000000DXP71.2300.06"}),
            "0.0.b100 carries uid IBM.750000000DXP71.2300.05, not IBM.750000000DXP71.2300.06",
        ),
        (
            State::Online,
            "fibre_channel_eckd",
            json!({"device_id": "0.2.c000"}),
            "no CCW device 0.2.c000: not in /sys/bus/ccw/devices and not on the cio_ignore list",
        ),
        (
            State::Online,
            "fibre_channel_eckd",
            json!({"device_id": "0.0.b100-0.0.b1ff"}),
            "connection property device_id: invalid CCW bus id",
        ),
        (
            State::Online,
            "fibre_channel_eckd",
            json!({"control_unit": "b1", "unit_address": "00"}),
            "connection property control_unit is not supported",
        ),
        (
            State::Online,
            "fibre_channel_eckd",
            json!({"driver_volume_type": "iscsi", "data": {"device_id": BUSID}}),
            "driver_volume_type",
        ),
    ] {
        let h = Host::new(state);
        let before = h.snapshot();
        let r = h.moor("connect", protocol, true, &props, &[]);
        assert_eq!(r.code, Some(1), "{props}: {r}");
        assert!(r.stderr.contains(needle), "{needle}: {r}");
        assert!(!r.stdout.contains("operations"), "{r}");
        assert_eq!(h.snapshot(), before);
    }
}

fn device_info() -> Value {
    json!({"type": "block", "path": "/dev/disk/by-path/ccw-0.0.b100", "busid": BUSID,
           "uid": UID, "device": "dasdb", "size": SECTORS * 512,
           "partitions": ["/dev/disk/by-path/ccw-0.0.b100-part1"]})
}

#[test]
fn disconnect_dry_run_plans_the_guarded_safe_offline() {
    let h = Host::new(State::Online);
    let di = h.json_file("di.json", &device_info());
    let before = h.snapshot();
    let r = h.moor(
        "disconnect",
        "fibre_channel_eckd",
        true,
        &json!({"device_id": BUSID}),
        &["--device-info", &di],
    );
    assert_eq!(r.code, Some(0), "{r}");
    let plan = r.json();
    assert_eq!(op_names(&plan), ["dasd.safe_offline"], "{r}");
    assert!(
        plan["operations"][0]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("expected_uid: {UID}")),
        "{plan}"
    );
    assert_eq!(h.snapshot(), before);

    // Another volume behind the device number: refused, nothing planned.
    let r = h.moor(
        "disconnect",
        "dasd",
        true,
        &json!({"device_id": BUSID}),
        &[
            "--device-info",
            &h.json_file("other.json", &{
                let mut d = device_info();
                d["uid"] = json!("IBM.750000000DXP71.2300.06");
                d
            }),
        ],
    );
    assert_eq!(r.code, Some(1), "{r}");
    assert!(
        r.stderr
            .contains("carries uid IBM.750000000DXP71.2300.05, not IBM.750000000DXP71.2300.06"),
        "{r}"
    );
    // A device_info without the uid is refused before anything is read.
    let mut anonymous = device_info();
    anonymous["uid"] = json!("");
    let r = h.moor(
        "disconnect",
        "dasd",
        true,
        &json!({"device_id": BUSID}),
        &["--device-info", &h.json_file("anon.json", &anonymous)],
    );
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("no DASD uid"), "{r}");

    // Offline already: nothing to plan.
    let h = Host::new(State::Offline);
    let di = h.json_file("di.json", &device_info());
    let r = h.moor(
        "disconnect",
        "fibre_channel_eckd",
        true,
        &json!({"device_id": BUSID}),
        &["--device-info", &di],
    );
    assert_eq!(r.code, Some(0), "{r}");
    assert!(op_names(&r.json()).is_empty(), "{r}");
}

#[test]
fn paths_and_extend_read_the_host_only() {
    let h = Host::new(State::Online);
    let r = h.moor(
        "paths",
        "fibre_channel_eckd",
        false,
        &json!({"device_id": BUSID}),
        &[],
    );
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.json(), json!(["/dev/disk/by-path/ccw-0.0.b100"]));
    let r = h.moor(
        "paths",
        "dasd",
        false,
        &json!({"device_id": BUSID, "uid": "IBM.750000000DXP71.2300.06"}),
        &[],
    );
    assert_eq!(r.code, Some(1), "{r}");
    let di = h.json_file("di.json", &device_info());
    let r = h.moor(
        "extend",
        "fibre_channel_eckd",
        true,
        &json!({"device_id": BUSID}),
        &["--device-info", &di],
    );
    assert_eq!(r.code, Some(0), "{r}");
    assert!(op_names(&r.json()).is_empty(), "{r}");
    assert!(r.stderr.contains("do not change size while online"), "{r}");
    let h = Host::new(State::Ignored);
    let r = h.moor("paths", "dasd", false, &json!({"device_id": BUSID}), &[]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.json(), json!([]));
}
