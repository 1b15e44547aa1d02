use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::exec::{DryRun, Scripted};

const SYS_UUID: &str = "9126E942-396D-11E7-B0B7-A81E84C186D1";
const SYS_NQN: &str = "nqn.2014-08.org.nvmexpress:uuid:9126e942-396d-11e7-b0b7-a81e84c186d1";
const SYS_ID: &str = "9126e942-396d-11e7-b0b7-a81e84c186d1";
const RANDOM: &str = "3c7d1a9e-52b4-4f0e-9a51-0d6f1c2b8e77";

fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// A moord that creates the identity files in the fixture as asked.
fn creating_moord(root: &Path, expect: &[(&str, &str)]) -> Scripted {
    let mut s = Scripted::new();
    for (key, value) in expect {
        let root = root.to_path_buf();
        let key = key.to_string();
        s = s.expect_args(
            "nvme.host_identity",
            json!({ key.clone(): value }),
            move |args: &Value| {
                let v = args[&key].as_str().unwrap();
                put(&root, &format!("etc/nvme/{key}"), v);
                Ok(json!({}))
            },
        );
    }
    s
}

#[test]
fn both_files_present_are_used_as_they_are() {
    let d = tempfile::tempdir().unwrap();
    // nvme gen-hostnqn writes a trailing newline; keep the NQN's case.
    let nqn = "nqn.2014-08.org.nvmexpress:uuid:AAAAAAAA-1111-2222-3333-444444444444";
    put(d.path(), "etc/nvme/hostnqn", &format!("{nqn}\n"));
    put(
        d.path(),
        "etc/nvme/hostid",
        "\n  bbbbbbbb-1111-2222-3333-444444444444 \n",
    );
    let paths = HostPaths::under(d.path());
    let moord = Scripted::new();
    let id = ensure_identity(&paths, &moord, deadline()).unwrap();
    assert_eq!(id.hostnqn.as_str(), nqn);
    assert_eq!(
        id.hostid.to_string(),
        "bbbbbbbb-1111-2222-3333-444444444444"
    );
    assert!(moord.calls().is_empty());
}

#[test]
fn missing_files_come_from_the_system_uuid() {
    let d = tempfile::tempdir().unwrap();
    put(
        d.path(),
        "sys/class/dmi/id/product_uuid",
        &format!("{SYS_UUID}\n"),
    );
    let paths = HostPaths::under(d.path());
    let moord = creating_moord(d.path(), &[("hostnqn", SYS_NQN), ("hostid", SYS_ID)]);
    let id = ensure_identity(&paths, &moord, deadline()).unwrap();
    assert_eq!(
        (id.hostnqn.as_str(), id.hostid.to_string().as_str()),
        (SYS_NQN, SYS_ID)
    );
    assert!(moord.unused().is_empty(), "{:?}", moord.unused());
    // Written without a trailing newline (as os-brick), read back the same.
    assert_eq!(
        fs::read_to_string(d.path().join("etc/nvme/hostnqn")).unwrap(),
        SYS_NQN
    );
}

#[test]
fn placeholder_or_missing_system_uuid_falls_back_to_random() {
    for product_uuid in [
        Some("03000200-0400-0500-0006-000700080009"),
        Some("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"),
        Some("Not Settable"),
        None,
    ] {
        let d = tempfile::tempdir().unwrap();
        if let Some(u) = product_uuid {
            put(d.path(), "sys/class/dmi/id/product_uuid", u);
        }
        put(
            d.path(),
            "proc/sys/kernel/random/uuid",
            &format!("{RANDOM}\n"),
        );
        let paths = HostPaths::under(d.path());
        let nqn = format!("nqn.2014-08.org.nvmexpress:uuid:{RANDOM}");
        let moord = creating_moord(d.path(), &[("hostnqn", &nqn), ("hostid", RANDOM)]);
        let id = ensure_identity(&paths, &moord, deadline()).unwrap();
        assert_eq!(id.hostnqn.as_str(), nqn, "{product_uuid:?}");
        assert!(moord.unused().is_empty());
    }
    // No randomness either: a clear error, nothing created.
    let d = tempfile::tempdir().unwrap();
    let moord = Scripted::new();
    let e = ensure_identity(&HostPaths::under(d.path()), &moord, deadline()).unwrap_err();
    assert!(matches!(e, HostIdentityError::NoUuid { .. }), "{e}");
    assert!(moord.calls().is_empty());
}

#[test]
fn one_file_gives_the_other() {
    // A UUID-form host NQN carries the host id (nvme-cli derives it the same way).
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "etc/nvme/hostnqn", SYS_NQN);
    put(d.path(), "sys/class/dmi/id/product_uuid", RANDOM);
    let moord = creating_moord(d.path(), &[("hostid", SYS_ID)]);
    let id = ensure_identity(&HostPaths::under(d.path()), &moord, deadline()).unwrap();
    assert_eq!(id.hostid.to_string(), SYS_ID);
    assert!(moord.unused().is_empty());

    // A host id alone gives the UUID-form NQN, so the pair agrees.
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "etc/nvme/hostid", SYS_ID);
    let moord = creating_moord(d.path(), &[("hostnqn", SYS_NQN)]);
    let id = ensure_identity(&HostPaths::under(d.path()), &moord, deadline()).unwrap();
    assert_eq!(id.hostnqn.as_str(), SYS_NQN);

    // A vendor-form NQN without a host id: the host id from the system UUID.
    let d = tempfile::tempdir().unwrap();
    put(
        d.path(),
        "etc/nvme/hostnqn",
        "nqn.1994-05.com.redhat:host-7",
    );
    put(d.path(), "sys/class/dmi/id/product_uuid", SYS_UUID);
    let moord = creating_moord(d.path(), &[("hostid", SYS_ID)]);
    let id = ensure_identity(&HostPaths::under(d.path()), &moord, deadline()).unwrap();
    assert_eq!(id.hostnqn.as_str(), "nqn.1994-05.com.redhat:host-7");
    assert_eq!(id.hostid.to_string(), SYS_ID);
}

#[test]
fn plan_identity_decisions() {
    let sys: NvmeUuid = SYS_UUID.parse().unwrap();
    let nqn: Nqn = SYS_NQN.parse().unwrap();
    let no_random = || -> Result<NvmeUuid, HostIdentityError> { panic!("random not needed") };
    let p = plan_identity(FoundIdentity::default(), Some(sys), no_random).unwrap();
    assert_eq!(p.source, IdentitySource::SystemUuid);
    assert_eq!(
        p.create,
        [
            NvmeHostIdentity::Hostnqn(nqn.clone()),
            NvmeHostIdentity::Hostid(sys)
        ]
    );
    let found = FoundIdentity {
        hostnqn: Some(&nqn),
        hostid: Some(sys),
    };
    let p = plan_identity(found, None, no_random).unwrap();
    assert_eq!((p.source, p.create.len()), (IdentitySource::Files, 0));
    let p = plan_identity(FoundIdentity::default(), None, || {
        Ok(RANDOM.parse().unwrap())
    })
    .unwrap();
    assert_eq!(p.source, IdentitySource::Random);
    assert_eq!(p.identity.hostid.to_string(), RANDOM);
}

#[test]
fn bad_files_are_never_replaced() {
    for (file, text) in [
        ("hostnqn", "host-1\n"),
        ("hostnqn", "nqn.2014-08.org.nvmexpress:uuid:1234"),
        ("hostid", "not-a-uuid"),
        ("hostid", "00000000-0000-0000-0000-000000000000"),
    ] {
        let d = tempfile::tempdir().unwrap();
        put(d.path(), &format!("etc/nvme/{file}"), text);
        put(d.path(), "sys/class/dmi/id/product_uuid", SYS_UUID);
        let moord = Scripted::new();
        let e = ensure_identity(&HostPaths::under(d.path()), &moord, deadline()).unwrap_err();
        assert!(
            matches!(&e, HostIdentityError::Invalid { path, .. } if path.ends_with(file)),
            "{text}: {e}"
        );
        assert!(moord.calls().is_empty());
    }
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "etc/nvme/hostnqn", " \n\n");
    let e = read_identity(&HostPaths::under(d.path())).unwrap_err();
    assert!(matches!(e, HostIdentityError::Empty { .. }), "{e}");
}

#[test]
fn system_uuid_through_moord() {
    let reply = json!({"content": moor_privhelper::ops::b64_encode(b"9126E942-396D-11E7-B0B7-A81E84C186D1\n"),
                       "truncated": false});
    let moord = Scripted::new().expect("nvme.system_uuid", move |_| Ok(reply.clone()));
    let s = system_uuid_via_moord(&moord, deadline()).unwrap();
    assert_eq!(s, SystemUuid::Found(SYS_UUID.parse().unwrap()));
    let reply = json!({"content": moor_privhelper::ops::b64_encode(b"03000200-0400-0500-0006-000700080009")});
    let moord = Scripted::new().expect("nvme.system_uuid", move |_| Ok(reply.clone()));
    assert!(matches!(
        system_uuid_via_moord(&moord, deadline()).unwrap(),
        SystemUuid::Unusable(_)
    ));
    let moord = Scripted::new().expect("nvme.system_uuid", |_| {
        Err(PrivError::Refused {
            op: "nvme.system_uuid",
            code: "denied".into(),
            message: "no filter".into(),
        })
    });
    assert!(system_uuid_via_moord(&moord, deadline()).is_err());
}

#[test]
fn a_file_created_meanwhile_wins() {
    // moord refuses to create hostnqn (it exists by now: another process was
    // faster); the identity on disk is used.
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "sys/class/dmi/id/product_uuid", SYS_UUID);
    let root = d.path().to_path_buf();
    let other = "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-1111-2222-3333-444444444444";
    let moord = Scripted::new()
        .expect("nvme.host_identity", move |_| {
            put(&root, "etc/nvme/hostnqn", other);
            Err(PrivError::Failed {
                op: "nvme.host_identity",
                message: "File exists".into(),
            })
        })
        .expect("nvme.host_identity", {
            let root = d.path().to_path_buf();
            move |_| {
                put(&root, "etc/nvme/hostid", SYS_ID);
                Ok(json!({}))
            }
        });
    let id = ensure_identity(&HostPaths::under(d.path()), &moord, deadline()).unwrap();
    assert_eq!(id.hostnqn.as_str(), other);
    // A failure that leaves the file missing is reported as moord's error.
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "etc/nvme/hostid", SYS_ID);
    let moord = Scripted::new().expect("nvme.host_identity", |_| {
        Err(PrivError::Failed {
            op: "nvme.host_identity",
            message: "No such file or directory".into(),
        })
    });
    let e = ensure_identity(&HostPaths::under(d.path()), &moord, deadline()).unwrap_err();
    assert!(matches!(e, HostIdentityError::Privileged(_)), "{e}");
    // Success without the file: reported too.
    let moord = Scripted::new().expect("nvme.host_identity", |_| Ok(json!({})));
    let e = ensure_identity(&HostPaths::under(d.path()), &moord, deadline()).unwrap_err();
    assert!(
        matches!(&e, HostIdentityError::NotCreated { path } if path.ends_with("nvme/hostnqn")),
        "{e}"
    );
}

#[test]
fn dry_run_shows_the_plan() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "sys/class/dmi/id/product_uuid", SYS_UUID);
    let dry = DryRun::new();
    let id = ensure_identity(&HostPaths::under(d.path()), &dry, deadline()).unwrap();
    assert_eq!(id.hostnqn.as_str(), SYS_NQN);
    let planned = dry.planned();
    assert_eq!(planned.len(), 2, "{planned:?}");
    assert!(planned[0].starts_with("nvme.host_identity") && planned[0].contains(SYS_NQN));
    assert!(!d.path().join("etc/nvme/hostnqn").exists());
}

#[test]
fn native_multipath_and_connector_properties() {
    let d = tempfile::tempdir().unwrap();
    let paths = HostPaths::under(d.path());
    assert_eq!(native_multipath(&paths).unwrap(), None);
    let p = connector_properties(&paths).unwrap();
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        json!({"nvme_native_multipath": false})
    );
    put(d.path(), "sys/module/nvme_core/parameters/multipath", "Y\n");
    put(d.path(), "etc/nvme/hostnqn", SYS_NQN);
    put(d.path(), "etc/nvme/hostid", SYS_ID);
    assert_eq!(native_multipath(&paths).unwrap(), Some(true));
    assert_eq!(
        serde_json::to_value(connector_properties(&paths).unwrap()).unwrap(),
        json!({"nqn": SYS_NQN, "nvme_hostid": SYS_ID, "nvme_native_multipath": true})
    );
    put(d.path(), "sys/module/nvme_core/parameters/multipath", "N\n");
    assert_eq!(native_multipath(&paths).unwrap(), Some(false));
    // Reading the properties never creates anything.
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "sys/class/dmi/id/product_uuid", SYS_UUID);
    connector_properties(&HostPaths::under(d.path())).unwrap();
    assert!(!d.path().join("etc").exists());
}
