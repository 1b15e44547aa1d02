use super::*;
use crate::host::fixture::{Tree, write};
use crate::transport::nvmeof::test_support::*;
use crate::types::NvmeTransport;

fn tree() -> (tempfile::TempDir, Tree) {
    let d = tempfile::tempdir().unwrap();
    let t = Tree::new(d.path());
    (d, t)
}

fn portal(addr: &str, port: u16) -> NvmePortal {
    NvmePortal {
        traddr: addr.parse().unwrap(),
        trsvcid: port,
        transport: NvmeTransport::Tcp,
    }
}

fn expect(uuid: Option<&str>, nguid: Option<&str>, nsid: Option<u32>) -> NamespaceId {
    NamespaceId {
        uuid: uuid.map(|u| u.parse().unwrap()),
        nguid: nguid.map(|g| g.parse().unwrap()),
        nsid: nsid.map(|n| Nsid::new(n.into()).unwrap()),
    }
}

fn nqn(s: &str) -> Nqn {
    s.parse().unwrap()
}

fn c(n: u32) -> NvmeController {
    NvmeController::new(n)
}

#[test]
fn address_forms() {
    let old = CtrlAddress::parse("traddr=10.0.0.1,trsvcid=4420\n");
    assert_eq!(old.traddr.as_deref(), Some("10.0.0.1"));
    assert_eq!(old.trsvcid.as_deref(), Some("4420"));
    assert_eq!(old.src_addr, None);
    // Newer kernels (os-brick #2035811), host side fields, IPv6.
    let new = CtrlAddress::parse(
        "traddr=fd00::1,trsvcid=4420,host_traddr=fd00::9,host_iface=eth1,src_addr=fd00::9",
    );
    assert_eq!(new.traddr.as_deref(), Some("fd00::1"));
    assert_eq!(new.host_traddr.as_deref(), Some("fd00::9"));
    assert_eq!(new.host_iface.as_deref(), Some("eth1"));
    assert_eq!(new.src_addr.as_deref(), Some("fd00::9"));
    assert_eq!(CtrlAddress::parse(""), CtrlAddress::default());
    assert_eq!(
        CtrlAddress::parse("junk,traddr=1.2.3.4,x=y")
            .traddr
            .as_deref(),
        Some("1.2.3.4")
    );
}

#[test]
fn single_path_without_native_multipath() {
    let (_d, t) = tree();
    let mut spec = tcp(SUBSYS, "10.0.0.1");
    spec.src_addr = Some("10.0.0.9");
    add_controller(&t, 0, 0, &spec);
    add_namespace(&t, 0, 0, &ns(1, UUID1), false);
    let p = t.paths();
    let ctrls = controllers(&p).unwrap();
    assert_eq!(ctrls.len(), 1);
    let ctrl = &ctrls[0];
    assert_eq!(ctrl.name, c(0));
    assert_eq!(ctrl.state, CtrlState::Live);
    assert_eq!(ctrl.reconnect_delay, Some(10));
    assert_eq!(ctrl.ctrl_loss_tmo, Some(Tmo::Off));
    assert_eq!(ctrl.address.src_addr.as_deref(), Some("10.0.0.9"));
    let host = nqn(HOSTNQN);
    assert!(ctrl.is_for(&nqn(SUBSYS), &portal("10.0.0.1", 4420), &host));
    // Every element of the match tuple counts.
    assert!(!ctrl.is_for(&nqn(SUBSYS2), &portal("10.0.0.1", 4420), &host));
    assert!(!ctrl.is_for(&nqn(SUBSYS), &portal("10.0.0.2", 4420), &host));
    assert!(!ctrl.is_for(&nqn(SUBSYS), &portal("10.0.0.1", 4421), &host));
    let rdma = NvmePortal {
        transport: NvmeTransport::Rdma,
        ..portal("10.0.0.1", 4420)
    };
    assert!(!ctrl.is_for(&nqn(SUBSYS), &rdma, &host));
    let other_host = nqn("nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-1111-2222-3333-444444444444");
    assert!(!ctrl.is_for(&nqn(SUBSYS), &portal("10.0.0.1", 4420), &other_host));

    let nss = namespaces(&p, c(0)).unwrap();
    assert_eq!(nss.len(), 1);
    let n = &nss[0];
    assert_eq!((n.name.as_str(), n.block.as_str()), ("nvme0n1", "nvme0n1"));
    assert!(!n.multipath && n.ana_state.is_none());
    assert_eq!(n.ids.uuid.unwrap().to_string(), UUID1);
    assert_eq!(n.ids.nsid.unwrap().get(), 1);
    assert_eq!(n.ids.wwid.as_deref(), Some(&*format!("uuid.{UUID1}")));
    assert_eq!(n.size_sectors, Some(2_097_152));
    let l = find_namespace(&p, &[c(0)], &expect(Some(UUID1), None, Some(1))).unwrap();
    assert_eq!(l.blocks(), ["nvme0n1"]);
    assert_eq!(l.matches[0].1, By::Uuid);
    assert!(l.conflicts.is_empty());
    assert!(block_exists(&p, "nvme0n1").unwrap());
    assert!(!block_exists(&p, "nvme0n2").unwrap());
    assert!(block_exists(&p, "../nvme0n1").is_err());
}

#[test]
fn two_controllers_with_native_multipath() {
    let (_d, t) = tree();
    add_controller(&t, 0, 0, &tcp(SUBSYS, "10.0.0.1"));
    add_controller(&t, 1, 0, &tcp(SUBSYS, "10.0.1.1"));
    add_namespace(&t, 0, 0, &ns(1, UUID1), true);
    add_namespace(&t, 1, 0, &ns(1, UUID1), true);
    // The character device of the namespace is not a disk.
    write(
        &t.path("sys/devices/virtual/nvme-fabrics/ctl/nvme1/ng0n1/dev"),
        "240:1\n",
    );
    let p = t.paths();
    let ctrls = controllers(&p).unwrap();
    assert_eq!(
        ctrls.iter().map(|c| c.name).collect::<Vec<_>>(),
        [c(0), c(1)]
    );
    let host = nqn(HOSTNQN);
    assert!(ctrls[1].is_for(&nqn(SUBSYS), &portal("10.0.1.1", 4420), &host));
    let paths1 = namespaces(&p, c(1)).unwrap();
    assert_eq!(paths1.len(), 1);
    assert_eq!(paths1[0].name, "nvme0c1n1");
    assert_eq!(paths1[0].block, "nvme0n1");
    assert!(paths1[0].multipath);
    assert_eq!(paths1[0].ana_state.as_deref(), Some("optimized"));
    let l = find_namespace(&p, &[c(0), c(1)], &expect(Some(UUID1), None, None)).unwrap();
    assert_eq!(l.matches.len(), 2);
    assert_eq!(l.matches[0].0.name, "nvme0c0n1");
    // One head device for both paths.
    assert_eq!(l.blocks(), ["nvme0n1"]);
    assert!(block_exists(&p, "nvme0n1").unwrap());
    assert!(t.exists("dev/nvme0n1") && t.exists("sys/block/nvme0c1n1"));
}

#[test]
fn two_namespaces_on_one_subsystem() {
    let (_d, t) = tree();
    add_controller(&t, 0, 0, &tcp(SUBSYS, "10.0.0.1"));
    add_namespace(&t, 0, 0, &ns(1, UUID1), true);
    add_namespace(&t, 0, 0, &ns(2, UUID2), true);
    let p = t.paths();
    assert_eq!(namespaces(&p, c(0)).unwrap().len(), 2);
    let l = find_namespace(&p, &[c(0)], &expect(Some(UUID2), None, Some(2))).unwrap();
    assert_eq!(l.blocks(), ["nvme0n2"]);
    assert!(l.conflicts.is_empty());
    // nsid alone still picks the right one (weakest match, reported as such).
    let l = find_namespace(&p, &[c(0)], &expect(None, None, Some(1))).unwrap();
    assert_eq!(l.blocks(), ["nvme0n1"]);
    assert_eq!(l.matches[0].1, By::Nsid);
    // An identifier nobody has: nothing.
    let l = find_namespace(
        &p,
        &[c(0)],
        &expect(Some("11111111-2222-3333-4444-555555555555"), None, None),
    )
    .unwrap();
    assert!(l.matches.is_empty() && l.conflicts.is_empty());
}

#[test]
fn reconnecting_controller() {
    let (_d, t) = tree();
    let mut spec = tcp(SUBSYS, "10.0.0.1");
    spec.state = "connecting";
    add_controller(&t, 0, 0, &spec);
    add_namespace(&t, 0, 0, &ns(1, UUID1), true);
    let p = t.paths();
    let ctrl = controller(&p, c(0)).unwrap().unwrap();
    assert_eq!(ctrl.state, CtrlState::Connecting);
    assert!(ctrl.state.is_reconnecting() && !ctrl.state.is_going());
    // The namespace stays visible while the controller reconnects.
    assert_eq!(namespaces(&p, c(0)).unwrap().len(), 1);
    set_state(&t, 0, "live");
    assert_eq!(
        controller(&p, c(0)).unwrap().unwrap().state,
        CtrlState::Live
    );
    set_state(&t, 0, "deleting (no IO)");
    let s = controller(&p, c(0)).unwrap().unwrap().state;
    assert_eq!(s, CtrlState::DeletingNoIo);
    assert!(s.is_going());
    set_state(&t, 0, "weird");
    assert_eq!(
        controller(&p, c(0)).unwrap().unwrap().state,
        CtrlState::Other("weird".into())
    );
    assert_eq!(controller(&p, c(9)).unwrap(), None);
}

#[test]
fn identity_change_at_the_same_nsid_is_a_conflict() {
    let (_d, t) = tree();
    add_controller(&t, 0, 0, &tcp(SUBSYS, "10.0.0.1"));
    add_namespace(&t, 0, 0, &ns(1, UUID1), true);
    let p = t.paths();
    let id = expect(Some(UUID1), None, Some(1));
    assert_eq!(
        find_namespace(&p, &[c(0)], &id).unwrap().blocks(),
        ["nvme0n1"]
    );
    // The array maps another volume at nsid 1.
    change_identity(&t, 0, 0, &ns(1, UUID2));
    let l = find_namespace(&p, &[c(0)], &id).unwrap();
    assert!(l.matches.is_empty());
    assert_eq!(l.conflicts.len(), 1);
    let d = &l.conflicts[0].1;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].what, By::Uuid);
    assert_eq!(d[0].found, UUID2);
    assert!(d[0].to_string().contains("expected c20aba21"), "{}", d[0]);
    // With only the nsid to go by, the new namespace would be taken for the volume:
    // that is why connection info needs a UUID or NGUID to be safe.
    let l = find_namespace(&p, &[c(0)], &expect(None, None, Some(1))).unwrap();
    assert_eq!(l.matches[0].1, By::Nsid);
}

#[test]
fn match_rules() {
    let found = NamespaceIds {
        uuid: Some(UUID1.parse().unwrap()),
        nguid: Some(NGUID1.parse().unwrap()),
        nsid: Some(Nsid::new(3).unwrap()),
        wwid: None,
    };
    let m = |id| match_namespace(&id, &found);
    assert_eq!(
        m(expect(Some(UUID1), Some(NGUID1), Some(3))),
        NsMatch::Match(By::Uuid)
    );
    assert_eq!(
        m(expect(None, Some(NGUID1), Some(3))),
        NsMatch::Match(By::Nguid)
    );
    assert_eq!(m(expect(None, None, Some(3))), NsMatch::Match(By::Nsid));
    assert_eq!(m(expect(Some(UUID2), None, Some(4))), NsMatch::NoMatch);
    // Same UUID, other nsid: inconsistent, refused too.
    assert!(matches!(
        m(expect(Some(UUID1), None, Some(4))),
        NsMatch::Conflict(d) if d[0].what == By::Nsid
    ));
    assert!(matches!(
        m(expect(None, Some("00000000-0000-0000-0000-0000000000aa"), Some(3))),
        NsMatch::Conflict(d) if d[0].what == By::Nguid
    ));
    // Identifiers the namespace does not report neither match nor conflict.
    let bare = NamespaceIds {
        nsid: Some(Nsid::new(3).unwrap()),
        ..NamespaceIds::default()
    };
    assert_eq!(
        match_namespace(&expect(Some(UUID1), None, Some(3)), &bare),
        NsMatch::Match(By::Nsid)
    );
    assert_eq!(
        match_namespace(&expect(Some(UUID1), None, None), &bare),
        NsMatch::NoMatch
    );
}

#[test]
fn nguid_only_namespace() {
    // No UUID: the kernel shows the NGUID as `uuid`; moor does not take it for a
    // UUID (so a different vol_uuid is no conflict) but matches it like os-brick.
    let (_d, t) = tree();
    add_controller(&t, 0, 0, &tcp(SUBSYS, "10.0.0.1"));
    let spec = NsSpec {
        head: 1,
        nsid: 1,
        uuid: None,
        nguid: Some(NGUID1),
        size_sectors: 8,
    };
    add_namespace(&t, 0, 0, &spec, false);
    let p = t.paths();
    let n = &namespaces(&p, c(0)).unwrap()[0];
    assert_eq!(n.ids.uuid, None);
    assert_eq!(n.ids.nguid.unwrap().to_string(), NGUID1);
    assert_eq!(
        n.ids.wwid.as_deref(),
        Some("eui.f0e1d2c3b4a5968778695a4b3c2d1e0f")
    );
    let l = find_namespace(&p, &[c(0)], &expect(Some(UUID1), Some(NGUID1), None)).unwrap();
    assert_eq!(l.matches[0].1, By::Nguid);
    let l = find_namespace(&p, &[c(0)], &expect(Some(NGUID1), None, None)).unwrap();
    assert_eq!(l.matches[0].1, By::Nguid);
    let l = find_namespace(&p, &[c(0)], &expect(Some(UUID1), None, Some(1))).unwrap();
    assert_eq!(l.matches[0].1, By::Nsid);
}

#[test]
fn listing_is_robust() {
    let (_d, t) = tree();
    let p = t.paths();
    // No fabrics module loaded: no controllers, not an error.
    assert!(controllers(&p).unwrap().is_empty());
    assert!(namespaces(&p, c(0)).unwrap().is_empty());
    add_controller(&t, 3, 3, &tcp(SUBSYS, "10.0.0.1"));
    // A controller being deleted (no state any more) and stray entries are skipped.
    write(
        &t.path("sys/devices/virtual/nvme-fabrics/ctl/nvme4/subsysnqn"),
        "x\n",
    );
    write(
        &t.path("sys/devices/virtual/nvme-fabrics/ctl/nvmexyz/state"),
        "live\n",
    );
    let names: Vec<_> = controllers(&p).unwrap().iter().map(|c| c.name).collect();
    assert_eq!(names, [c(3)]);
    // Without a hostnqn attribute (old kernels) any host NQN matches.
    std::fs::remove_file(t.path("sys/devices/virtual/nvme-fabrics/ctl/nvme3/hostnqn")).unwrap();
    let ctrl = controller(&p, c(3)).unwrap().unwrap();
    assert_eq!(ctrl.hostnqn, None);
    let anyone = nqn("nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-1111-2222-3333-444444444444");
    assert!(ctrl.is_for(&nqn(SUBSYS), &portal("10.0.0.1", 4420), &anyone));
    // The same address written differently is the same portal.
    let mut v6 = tcp(SUBSYS2, "fd00:0:0::1");
    v6.trsvcid = 4421;
    add_controller(&t, 5, 5, &v6);
    let ctrl = controller(&p, c(5)).unwrap().unwrap();
    assert!(ctrl.is_for(&nqn(SUBSYS2), &portal("fd00::1", 4421), &nqn(HOSTNQN)));
}
