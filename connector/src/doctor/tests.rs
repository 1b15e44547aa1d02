//! The doctor and cleanup on fixture hosts: what counts as a leftover, what a
//! cleanup plans for it, and what it refuses.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::cleanup::{ActionKind, Cleaner, plan};
use super::scan::{Identity, leftovers};
use crate::attachments::{Attachment, Registry, device_ino};
use crate::exec::{PrivError, Privileged, exec_reply};
use crate::host::fixture::Tree;
use crate::host::scsi::Hctl;
use crate::host::udev::ScriptedEvents;
use crate::lock::LockDir;

const IQN: &str = "iqn.2010-10.org.openstack:volume-1";
const IQN2: &str = "iqn.2010-10.org.openstack:volume-2";
const RAW_A: &str = "naa.600a09803830447a4f244c465761aaaa";
const WWN_A: &str = "3600a09803830447a4f244c465761aaaa";
const RAW_B: &str = "naa.600a09803830447a4f244c465761bbbb";
const WWN_B: &str = "3600a09803830447a4f244c465761bbbb";
const WWN_GONE: &str = "3600a09803830447a4f244c46576100ff";

/// moord as far as the doctor asks it: `block.users` per device.
#[derive(Default)]
struct Users(BTreeMap<String, String>);

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Users")
    }
}

impl Privileged for Users {
    fn call(
        &self,
        op: &'static str,
        args: Value,
        _: &dyn fmt::Debug,
        _: Duration,
    ) -> Result<Value, PrivError> {
        assert_eq!(op, "block.users", "the doctor only asks who uses a device");
        let dev = args["device"].as_str().unwrap_or_default();
        if dev == "sdz" {
            return Ok(exec_reply(
                1,
                "",
                "Cannot stat file /proc/9/fd/0: Permission denied\n",
            ));
        }
        Ok(match self.0.get(dev) {
            Some(pids) => exec_reply(0, pids, &format!("/dev/{dev}:")),
            None => exec_reply(1, "", ""),
        })
    }
}

fn h(s: &str) -> Hctl {
    s.parse().unwrap()
}

struct Host {
    _dir: tempfile::TempDir,
    tree: Tree,
    registry: Registry,
    locks: LockDir,
}

/// Session 1 to IQN carries LUN 1 (volume A, claimed by a record) and LUN 2
/// (volume B, in a multipath map, no record); session 2 to IQN2 has no disk.
fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let tree = Tree::new(dir.path().join("root"));
    tree.add_session(1, 2, IQN, "192.0.2.10", 3260, 0);
    tree.add_lun(1, h("2:0:0:1"), "sdb", "8:16", RAW_A);
    tree.add_lun(1, h("2:0:0:2"), "sdc", "8:32", RAW_B);
    tree.add_multipath_map("dm-0", "253:0", WWN_B, WWN_B, &["sdc"]);
    tree.add_session(2, 3, IQN2, "fd00::2", 3260, 0);
    let registry = Registry::new(dir.path().join("attachments"));
    let paths = tree.paths();
    registry
        .record(&Attachment {
            device: "sdb".into(),
            wwid: WWN_A.into(),
            sysfs_ino: device_ino(&paths, "sdb").unwrap().unwrap(),
            protocol: "iscsi".into(),
            target: format!("{IQN}@192.0.2.10:3260 lun 1"),
            volume_id: None,
            attached_at: 0,
        })
        .unwrap();
    let locks = LockDir::new(dir.path().join("locks"));
    Host {
        _dir: dir,
        tree,
        registry,
        locks,
    }
}

fn kinds(f: &[super::Finding]) -> Vec<&'static str> {
    f.iter().map(|f| f.identity.kind()).collect()
}

#[test]
fn claimed_volumes_are_not_leftovers_and_the_rest_is_named_with_its_identity() {
    let host = host();
    let users = Users::default();
    let found = leftovers(&host.tree.paths(), &host.registry, Some(&users));
    assert_eq!(
        kinds(&found),
        ["idle_session", "unclaimed_scsi_volume"],
        "{found:#?}"
    );
    let Identity::IdleSession {
        session,
        target,
        portal,
        state,
    } = &found[0].identity
    else {
        panic!()
    };
    assert_eq!(
        (
            *session,
            target.as_str(),
            portal.as_deref(),
            state.as_deref()
        ),
        (2, IQN2, Some("[fd00::2]:3260"), Some("LOGGED_IN"))
    );
    let Identity::UnclaimedScsiVolume {
        protocol,
        wwid,
        paths,
        map,
    } = &found[1].identity
    else {
        panic!()
    };
    assert_eq!((protocol.as_str(), wwid.as_str()), ("iscsi", WWN_B));
    assert_eq!(paths.len(), 1);
    assert_eq!(
        (
            paths[0].device.as_str(),
            paths[0].target.as_str(),
            paths[0].portal.as_str(),
            paths[0].lun
        ),
        ("sdc", IQN, "192.0.2.10:3260", 2)
    );
    assert_eq!(map.as_ref(), Some(&("dm-0".to_string(), WWN_B.to_string())));
    // Its own map is not "another holder"; nobody has it open.
    assert!(found[1].in_use.is_empty(), "{:?}", found[1].in_use);
    assert!(!found[1].users_unknown);
    assert!(found[1].reason.contains("no moor attachment record claims"));
}

#[test]
fn a_path_of_a_claimed_volume_is_claimed_too() {
    let host = host();
    // A second path of volume A, on another session: same WWID as the record.
    host.tree.add_session(3, 4, IQN, "192.0.2.11", 3260, 0);
    host.tree.add_lun(3, h("4:0:0:1"), "sdd", "8:48", RAW_A);
    let found = leftovers(&host.tree.paths(), &host.registry, Some(&Users::default()));
    assert_eq!(kinds(&found), ["idle_session", "unclaimed_scsi_volume"]);
}

#[test]
fn a_record_of_a_device_that_is_gone_is_stale_and_its_disk_unclaimed() {
    let host = host();
    // sdb deleted and re-created: another kernel object under the same name, so
    // another inode than the record's (set directly: a fixture's new directory
    // may reuse the freed inode number).
    let mut rec = host.registry.get("sdb").unwrap();
    rec.sysfs_ino += 1_000_000;
    host.registry.record(&rec).unwrap();
    let found = leftovers(&host.tree.paths(), &host.registry, Some(&Users::default()));
    assert_eq!(
        kinds(&found),
        [
            "idle_session",
            "unclaimed_scsi_volume",
            "unclaimed_scsi_volume",
            "stale_record"
        ],
        "{found:#?}"
    );
}

#[test]
fn pathless_maps_dangling_and_lying_links_and_forgotten_wwids() {
    let host = host();
    let t = &host.tree;
    // Volume B's path is gone but its map stayed.
    t.remove_slave("dm-0", "sdc");
    t.remove_lun(h("2:0:0:2"));
    // udev left a link to sdc; another link names B but points at sdb (volume A).
    std::fs::create_dir_all(t.path("dev/disk/by-id")).unwrap();
    let _ = std::fs::remove_file(t.path(&format!("dev/disk/by-id/scsi-{WWN_B}")));
    std::os::unix::fs::symlink("../../sdc", t.path(&format!("dev/disk/by-id/scsi-{WWN_B}")))
        .unwrap();
    let lying = t.path("dev/disk/by-id/wwn-0x600a09803830447a4f244c465761bbbb");
    let _ = std::fs::remove_file(&lying);
    std::os::unix::fs::symlink("../../sdb", lying).unwrap();
    std::fs::create_dir_all(t.path("etc/multipath")).unwrap();
    std::fs::write(
        t.path("etc/multipath/wwids"),
        format!("# Multipath wwids, Version : 1.0\n#\n# Valid WWIDs:\n/{WWN_A}/\n/{WWN_B}/\n/{WWN_GONE}/\n"),
    )
    .unwrap();
    let found = leftovers(&t.paths(), &host.registry, Some(&Users::default()));
    let k = kinds(&found);
    assert!(k.contains(&"pathless_map"), "{found:#?}");
    let links: Vec<(&str, bool)> = found
        .iter()
        .filter_map(|f| match &f.identity {
            Identity::StaleLink { link, dangling, .. } => Some((link.as_str(), *dangling)),
            _ => None,
        })
        .collect();
    assert!(
        links.contains(&(format!("/dev/disk/by-id/scsi-{WWN_B}").as_str(), true)),
        "{links:?}"
    );
    assert!(
        links.contains(&(
            "/dev/disk/by-id/wwn-0x600a09803830447a4f244c465761bbbb",
            false
        )),
        "{links:?}"
    );
    // B's map still carries B: only the WWID no device has is stale.
    let wwids: Vec<&str> = found
        .iter()
        .filter_map(|f| match &f.identity {
            Identity::StaleWwid { wwid } => Some(wwid.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(wwids, [WWN_GONE]);

    let actions = plan(&found);
    let by_kind = |k: ActionKind| actions.iter().filter(|a| a.action == k).count();
    assert_eq!(by_kind(ActionKind::FlushMap), 1);
    assert_eq!(by_kind(ActionKind::RemoveLink), 1);
    assert_eq!(by_kind(ActionKind::ForgetWwid), 1);
    // The lying link is for a person (udev rewrites it on a change event).
    let manual = actions
        .iter()
        .find(|a| a.action == ActionKind::Manual)
        .unwrap();
    assert!(
        manual.skip.as_deref().unwrap().contains("udevadm trigger"),
        "{manual:?}"
    );
}

#[test]
fn devices_in_use_or_unverifiable_are_never_planned_for_removal() {
    let host = host();
    let paths = host.tree.paths();
    // Nobody can tell who has it open: skipped.
    let found = leftovers(&paths, &host.registry, None);
    let actions = plan(&found);
    let vol = actions
        .iter()
        .find(|a| a.action == ActionKind::DetachScsiVolume)
        .unwrap();
    assert!(
        vol.skip.as_deref().unwrap().contains("cannot check"),
        "{vol:?}"
    );
    // fuser could not look at every process: not an answer.
    assert!(super::scan::block_users(&Users::default(), "sdz").is_err());
    // A process has the map open.
    std::fs::create_dir_all(host.tree.path("proc/4242")).unwrap();
    std::fs::write(host.tree.path("proc/4242/comm"), "qemu-system-x86\n").unwrap();
    std::fs::create_dir_all(host.tree.path("proc/161")).unwrap();
    std::fs::write(host.tree.path("proc/161/comm"), "multipathd\n").unwrap();
    // multipathd holding the paths open for its checkers is not a use.
    let users = Users(BTreeMap::from([
        ("dm-0".to_string(), "  4242".to_string()),
        ("sdc".to_string(), "   161".to_string()),
    ]));
    let found = leftovers(&paths, &host.registry, Some(&users));
    let actions = plan(&found);
    let vol = actions
        .iter()
        .find(|a| a.action == ActionKind::DetachScsiVolume)
        .unwrap();
    assert_eq!(
        vol.finding.in_use,
        ["/dev/dm-0 open by pid 4242 (qemu-system-x86)"]
    );
    assert!(
        vol.skip.as_deref().unwrap().starts_with("in use"),
        "{vol:?}"
    );
    // Mounted.
    std::fs::create_dir_all(host.tree.path("proc/self")).unwrap();
    std::fs::write(
        host.tree.path("proc/self/mountinfo"),
        "36 25 253:0 / /var/lib/nova/mnt rw,relatime shared:1 - ext4 /dev/mapper/x rw\n",
    )
    .unwrap();
    let found = leftovers(&paths, &host.registry, Some(&Users::default()));
    let vol = found
        .iter()
        .find(|f| f.identity.kind() == "unclaimed_scsi_volume")
        .unwrap();
    assert_eq!(vol.in_use, ["/dev/dm-0 mounted on /var/lib/nova/mnt"]);
}

#[test]
fn the_plan_runs_the_detach_paths_against_a_dry_run() {
    let host = host();
    let users = Users::default();
    let found = leftovers(&host.tree.paths(), &host.registry, Some(&users));
    let actions = plan(&found);
    assert_eq!(
        actions.iter().map(|a| a.action).collect::<Vec<_>>(),
        [ActionKind::DetachScsiVolume, ActionKind::LogoutSession]
    );
    let events = ScriptedEvents::new();
    let c = Cleaner {
        paths: host.tree.paths(),
        privileged: &users,
        events: &events,
        locks: host.locks.clone(),
        registry: host.registry.clone(),
        timeout: Duration::from_secs(10),
    };
    let vol = c.preview(&actions[0]);
    assert_eq!(vol.status, "planned", "{vol:?}");
    let ops = vol.operations.join("\n");
    // The volume's WWID is what moord re-checks before each removal.
    for want in ["scsi.rescan", "multipath.flush", "scsi.delete"] {
        assert!(ops.contains(want), "{want} not in {ops}");
    }
    assert!(ops.contains(WWN_B), "{ops}");
    assert!(!ops.contains("sdb"), "volume A is claimed: {ops}");
    let session = c.preview(&actions[1]);
    assert_eq!(session.status, "planned", "{session:?}");
    assert!(
        session
            .operations
            .iter()
            .any(|o| o.starts_with("iscsi.logout")),
        "{session:?}"
    );
    assert!(
        session.operations.iter().any(|o| o.contains(IQN2)),
        "{session:?}"
    );
}

/// A Cleaner on `paths` with `privileged`.
fn cleaner<'a>(
    paths: crate::host::HostPaths,
    privileged: &'a dyn Privileged,
    events: &'a ScriptedEvents,
    dir: &std::path::Path,
    registry: Registry,
) -> Cleaner<'a> {
    Cleaner {
        paths,
        privileged,
        events,
        locks: LockDir::new(dir.join("locks")),
        registry,
        timeout: Duration::from_secs(10),
    }
}

#[test]
fn an_unclaimed_nvme_namespace_is_detached_by_its_identity() {
    use crate::transport::nvmeof::test_support as nv;
    let env = nv::setup(true);
    // One namespace on two controllers (native multipath), no record.
    nv::add_controller(&env.t, 0, 0, &nv::tcp(nv::SUBSYS, "192.0.2.1"));
    nv::add_controller(&env.t, 1, 0, &nv::tcp(nv::SUBSYS, "192.0.2.2"));
    nv::add_namespace(&env.t, 0, 0, &nv::ns(1, nv::UUID1), true);
    nv::add_namespace(&env.t, 1, 0, &nv::ns(1, nv::UUID1), true);
    let registry = Registry::new(env.locks.path().with_file_name("attachments"));
    let users = Users::default();
    let found = leftovers(&env.t.paths(), &registry, Some(&users));
    assert_eq!(kinds(&found), ["unclaimed_namespace"], "{found:#?}");
    let Identity::UnclaimedNamespace {
        device,
        subsysnqn,
        uuid,
        paths,
        ..
    } = &found[0].identity
    else {
        panic!()
    };
    assert_eq!(
        (device.as_str(), subsysnqn.as_str(), uuid.as_deref()),
        ("nvme0n1", nv::SUBSYS, Some(nv::UUID1))
    );
    assert_eq!(paths.len(), 2);
    let actions = plan(&found);
    assert_eq!(actions[0].action, ActionKind::DetachNamespace);
    let events = ScriptedEvents::new();
    let c = cleaner(
        env.t.paths(),
        &users,
        &events,
        env.locks.path(),
        registry.clone(),
    );
    let o = c.preview(&actions[0]);
    assert_eq!(o.status, "planned", "{o:?}");
    let ops = o.operations.join("\n");
    for want in ["block.flush", "nvme.disconnect"] {
        assert!(ops.contains(want), "{want} not in {ops}");
    }
    // A namespace moor recorded is claimed.
    registry
        .record(&Attachment {
            device: "nvme0n1".into(),
            wwid: format!("uuid.{}", nv::UUID1),
            sysfs_ino: device_ino(&env.t.paths(), "nvme0n1").unwrap().unwrap(),
            protocol: "nvmeof".into(),
            target: nv::SUBSYS.into(),
            volume_id: None,
            attached_at: 0,
        })
        .unwrap();
    assert!(leftovers(&env.t.paths(), &registry, Some(&users)).is_empty());
}

#[test]
fn an_unclaimed_fc_volume_is_found_by_transport_and_detached_over_every_path() {
    use crate::transport::fc::test_support as fcx;
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(dir.path().join("root"));
    fcx::dual_fabric(&t);
    fcx::add_fc_lun(&t, h("5:0:0:1"), "sdb", "8:16", fcx::RAW_WWID, None);
    fcx::add_fc_lun(&t, h("6:0:1:1"), "sdc", "8:32", fcx::RAW_WWID, None);
    let registry = Registry::new(dir.path().join("attachments"));
    let users = Users::default();
    let found = leftovers(&t.paths(), &registry, Some(&users));
    assert_eq!(kinds(&found), ["unclaimed_scsi_volume"], "{found:#?}");
    let Identity::UnclaimedScsiVolume {
        protocol,
        wwid,
        paths,
        map,
    } = &found[0].identity
    else {
        panic!()
    };
    assert_eq!(
        (protocol.as_str(), wwid.as_str()),
        ("fibre_channel", fcx::WWID)
    );
    assert!(map.is_none());
    let mut targets: Vec<&str> = paths.iter().map(|p| p.target.as_str()).collect();
    targets.sort();
    assert_eq!(
        targets,
        [format!("0x{}", fcx::TGT1), format!("0x{}", fcx::TGT2)]
    );
    let actions = plan(&found);
    let events = ScriptedEvents::new();
    let c = cleaner(t.paths(), &users, &events, dir.path(), registry);
    let o = c.preview(&actions[0]);
    assert_eq!(o.status, "planned", "{o:?}");
    let deletes = o
        .operations
        .iter()
        .filter(|op| op.starts_with("scsi.delete"))
        .count();
    assert_eq!(deletes, 2, "{o:?}");
    assert!(o.operations.iter().all(|op| !op.contains("iscsi")), "{o:?}");
}
