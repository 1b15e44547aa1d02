//! `moor doctor` and `moor cleanup` as processes on a fixture host tree
//! (`--host-root`), without moord: the report's shape and exit status, a plan
//! that shows the operations and changes nothing, and `--apply` refusing to run
//! without moord. (The full flow against real sessions, maps and moord is the
//! lab's `doctor_cleanup` scenario.)

#[allow(dead_code)]
mod cli_common;
mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};

use cli_common::{Run, moor_bin};

const GONE: &str = "36001405d0c70000000000000000dead";
const MAP: &str = "3600140500000000000000000000000aa";

fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

/// A host with a multipath map without paths, a dangling by-id link, a wwids
/// file listing the map's WWID and one no device carries, and a record of a
/// device that is gone.
fn host(dir: &Path) {
    let root = dir.join("root");
    put(
        &root,
        "sys/devices/virtual/block/dm-3/dm/uuid",
        &format!("mpath-{MAP}\n"),
    );
    put(
        &root,
        "sys/devices/virtual/block/dm-3/dm/name",
        &format!("{MAP}\n"),
    );
    put(&root, "sys/devices/virtual/block/dm-3/dev", "253:3\n");
    fs::create_dir_all(root.join("sys/devices/virtual/block/dm-3/slaves")).expect("fixture");
    fs::create_dir_all(root.join("sys/block")).expect("fixture");
    symlink("../devices/virtual/block/dm-3", root.join("sys/block/dm-3")).expect("fixture");
    fs::create_dir_all(root.join("dev/disk/by-id")).expect("fixture");
    symlink(
        "../../sdq",
        root.join(format!("dev/disk/by-id/scsi-{GONE}")),
    )
    .expect("fixture");
    put(
        &root,
        "etc/multipath/wwids",
        &format!("# Multipath wwids, Version : 1.0\n/{MAP}/\n/{GONE}/\n"),
    );
    put(
        &dir.join("attachments"),
        "sdq.json",
        r#"{"device":"sdq","wwid":"36001405d0c70000000000000000dead","sysfs_ino":12,"protocol":"iscsi","target":"iqn.2010-10.org.openstack:volume-9@10.0.0.1:3260 lun 1","attached_at":0}"#,
    );
}

fn moor(dir: &Path, args: &[&str]) -> Run {
    let root = dir.join("root");
    let out = Command::new(moor_bin())
        .args(args)
        .args(["--host-root", root.to_str().expect("utf-8")])
        .args([
            "--attachments-dir",
            dir.join("attachments").to_str().expect("utf-8"),
        ])
        .args(["--lock-dir", dir.join("locks").to_str().expect("utf-8")])
        .args([
            "--socket",
            dir.join("no-moord.sock").to_str().expect("utf-8"),
        ])
        .env_remove("MOOR_KEY_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run moor");
    Run::from(out)
}

/// Every file under `dir`, with its content or link target.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let t = fs::symlink_metadata(&p).expect("lstat").file_type();
            if t.is_symlink() {
                out.push(format!(
                    "{} -> {:?}",
                    p.display(),
                    fs::read_link(&p).expect("readlink")
                ));
            } else if t.is_dir() {
                stack.push(p);
            } else {
                out.push(format!(
                    "{} = {:?}",
                    p.display(),
                    fs::read(&p).expect("read")
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn doctor_lists_each_leftover_with_identity_and_reason_and_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    let run = moor(dir.path(), &["doctor", "--json"]);
    assert_eq!(run.code, Some(4), "{run}");
    let r = run.json();
    let kinds: Vec<&str> = r["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["pathless_map", "stale_link", "stale_wwid", "stale_record"],
        "{run}"
    );
    let l = &r["leftovers"];
    assert_eq!(l[0]["device"], "dm-3");
    assert_eq!(l[0]["wwid"], MAP);
    assert_eq!(l[1]["link"], format!("/dev/disk/by-id/scsi-{GONE}"));
    assert_eq!(l[1]["dangling"], true);
    assert_eq!(l[2]["wwid"], GONE, "the map still carries {MAP}: not stale");
    assert_eq!(l[3]["device"], "sdq");
    for f in l.as_array().unwrap() {
        assert!(!f["reason"].as_str().unwrap().is_empty(), "{f}");
    }
    // Without moord nobody can say who has the map open.
    assert_eq!(l[0]["users_unknown"], true, "{run}");
    let moord = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "moord")
        .unwrap();
    assert_eq!(moord["status"], "warn", "{moord}");
    // The text form names the same four.
    let text = moor(dir.path(), &["doctor"]);
    assert_eq!(text.code, Some(4), "{text}");
    assert!(text.stdout.contains("leftovers: 4"), "{text}");
    assert!(text.stdout.contains("pathless_map"), "{text}");
}

#[test]
fn cleanup_plan_shows_the_operations_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    let before = snapshot(dir.path());
    let run = moor(dir.path(), &["cleanup", "--plan", "--json"]);
    assert_eq!(snapshot(dir.path()), before, "a plan changed the host");
    // The map is skipped (who has it open is unknown): exit 4.
    assert_eq!(run.code, Some(4), "{run}");
    let plan = run.json();
    assert_eq!(plan["mode"], "plan");
    let acts = plan["actions"].as_array().unwrap();
    let by = |a: &str| {
        acts.iter()
            .find(|x| x["action"] == a)
            .unwrap_or_else(|| panic!("no {a} in {run}"))
    };
    assert_eq!(by("flush_map")["status"], "skipped");
    assert!(
        by("flush_map")["reason"]
            .as_str()
            .unwrap()
            .contains("cannot check which processes"),
        "{run}"
    );
    let link = by("remove_link");
    assert_eq!(link["status"], "planned", "{run}");
    assert!(
        link["operations"][0]
            .as_str()
            .unwrap()
            .starts_with("block.remove_stale_link"),
        "{run}"
    );
    let wwid = by("forget_wwid");
    let op = wwid["operations"][0].as_str().unwrap();
    assert!(
        op.starts_with("multipath.forget_wwid") && op.contains(GONE),
        "{run}"
    );
    assert_eq!(by("remove_record")["status"], "planned", "{run}");
}

#[test]
fn cleanup_apply_needs_moord_and_changes_nothing_without_it() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    let before = snapshot(dir.path());
    let run = moor(dir.path(), &["cleanup", "--apply"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("moord does not answer"), "{run}");
    assert_eq!(snapshot(dir.path()), before);
    // One of --plan / --apply is required.
    let run = moor(dir.path(), &["cleanup"]);
    assert_eq!(run.code, Some(2), "{run}");
    let run = moor(dir.path(), &["cleanup", "--plan", "--only", "99"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("no action 99"), "{run}");
}
