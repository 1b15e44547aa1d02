use super::*;
use serde_json::json;

const NQN: &str = "nqn.2014-08.org.nvmexpress:uuid:4ca8f5f1-0000-4000-8000-a1b2c3d4e5f6";
const SPDK1: &str = "nqn.2016-06.io.spdk:cnode1";
const SPDK2: &str = "nqn.2016-06.io.spdk:cnode2";
const VOL: &str = "c20aba21-6ef6-446b-b374-45733b4883ba";
const NGUID: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";

fn parse(v: Value) -> Result<NvmeofProps, PropsError> {
    NvmeofProps::from_connection_info(&v)
}

fn with(mut base: Value, key: &str, v: Value) -> Value {
    base.as_object_mut().unwrap().insert(key.to_owned(), v);
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

/// The example of the reference (os-brick `NVMeOFConnProps` docstring).
fn single() -> Value {
    json!({"target_nqn": NQN, "vol_uuid": VOL,
           "portals": [["10.0.0.1", 4420, "tcp"], ["10.0.1.1", 4420, "tcp"]],
           "host_nqn": null, "access_mode": "rw", "encrypted": false,
           "enforce_multipath": false})
}

fn legacy() -> Value {
    json!({"nqn": SPDK1, "transport_type": "rdma", "target_portal": "10.0.2.15",
           "target_port": "4420", "volume_nguid": NGUID, "ns_id": "1"})
}

fn replica(nqn: &str, addr: &str, uuid: &str) -> Value {
    json!({"target_nqn": nqn, "vol_uuid": uuid, "portals": [[addr, "4420", "tcp"]]})
}

fn replicated() -> Value {
    json!({"vol_uuid": VOL, "alias": "fakealias", "replica_count": 2,
           "volume_replicas": [
               replica(SPDK1, "10.0.2.15", "11111111-1111-1111-1111-111111111111"),
               replica(SPDK2, "10.0.2.16", "22222222-2222-2222-2222-222222222222")]})
}

fn key_of(e: &PropsError) -> String {
    match e {
        PropsError::Missing { key }
        | PropsError::WrongType { key, .. }
        | PropsError::Invalid { key, .. }
        | PropsError::BadValue { key, .. }
        | PropsError::EmptyList { key } => key.clone(),
        PropsError::Requires { key, .. } | PropsError::Policy { key, .. } => (*key).to_owned(),
        other => panic!("no key in {other:?}"),
    }
}

#[test]
fn single_target_example() {
    let p = parse(single()).unwrap();
    assert_eq!(p.shape, Shape::SingleTarget);
    assert!(p.replication.is_none());
    let t = p.single().unwrap();
    assert_eq!(t.nqn.as_str(), NQN);
    assert_eq!(
        t.portals,
        [
            NvmePortal {
                traddr: "10.0.0.1".parse().unwrap(),
                trsvcid: 4420,
                transport: NvmeTransport::Tcp
            },
            NvmePortal {
                traddr: "10.0.1.1".parse().unwrap(),
                trsvcid: 4420,
                transport: NvmeTransport::Tcp
            }
        ]
    );
    assert_eq!(t.namespace.uuid.unwrap().to_string(), VOL);
    assert!(t.namespace.nguid.is_none() && t.namespace.nsid.is_none());
    assert!(t.host_nqn.is_none());
    assert_eq!(p.access_mode, AccessMode::ReadWrite);
    assert!(!p.encrypted && !p.enforce_multipath);
    assert_eq!(p.policy, ReconnectPolicy::QUEUE);
}

#[test]
fn wrapped_in_connection_info() {
    let p = parse(json!({"driver_volume_type": "nvmeof", "data": single()})).unwrap();
    assert_eq!(p.single().unwrap().nqn.as_str(), NQN);
    let p = parse(json!({"driver_volume_type": "NVMEOF", "data": legacy()})).unwrap();
    assert_eq!(p.shape, Shape::Legacy);
}

#[test]
fn legacy_shape() {
    let p = parse(legacy()).unwrap();
    assert_eq!(p.shape, Shape::Legacy);
    let t = p.single().unwrap();
    assert_eq!(t.nqn.as_str(), SPDK1);
    assert_eq!(t.portals.len(), 1);
    assert_eq!(t.portals[0].traddr.to_string(), "10.0.2.15");
    assert_eq!(t.portals[0].trsvcid, 4420);
    assert_eq!(t.portals[0].transport, NvmeTransport::Rdma);
    assert_eq!(
        t.namespace.nguid.unwrap().to_string(),
        "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f"
    );
    assert_eq!(t.namespace.nsid.unwrap().get(), 1);
    // os-brick drops vol_uuid in the legacy shape; so does moor.
    let p = parse(with(legacy(), "vol_uuid", json!(VOL))).unwrap();
    assert!(p.single().unwrap().namespace.uuid.is_none());
    let v = without(without(legacy(), "volume_nguid"), "ns_id");
    let e = parse(with(v, "vol_uuid", json!(VOL))).unwrap_err();
    assert!(matches!(e, PropsError::NoIdentifier { .. }), "{e}");
    for k in ["target_portal", "target_port", "transport_type"] {
        let e = parse(without(legacy(), k)).unwrap_err();
        assert_eq!(key_of(&e), k, "{e}");
    }
    // The port as an integer, host_nqn set.
    let v = with(
        with(legacy(), "target_port", json!(4421)),
        "host_nqn",
        json!("nqn.2014-08.org.nvmexpress:uuid:9126e942-396d-11e7-b0b7-a81e84c186d1"),
    );
    let p = parse(v).unwrap();
    let t = p.single().unwrap();
    assert_eq!(t.portals[0].trsvcid, 4421);
    assert!(t.host_nqn.as_ref().unwrap().uuid().is_some());
}

#[test]
fn replicated_shape() {
    let p = parse(replicated()).unwrap();
    assert_eq!(p.shape, Shape::Replicated);
    assert!(p.single().is_none());
    let r = p.replication.as_ref().unwrap();
    assert_eq!(r.alias.as_ref().unwrap().as_str(), "fakealias");
    assert_eq!(r.replica_count, 2);
    assert_eq!(r.volume_uuid.unwrap().to_string(), VOL);
    assert_eq!(p.targets.len(), 2);
    assert_eq!(p.targets[1].nqn.as_str(), SPDK2);
    assert_eq!(
        p.targets[1].namespace.uuid.unwrap().to_string(),
        "22222222-2222-2222-2222-222222222222"
    );
    // One replica (os-brick decides later whether it is an MD leg): alias optional.
    let one = json!({"vol_uuid": VOL, "replica_count": "1",
                     "volume_replicas": [replica(SPDK1, "10.0.2.15", VOL)]});
    let p = parse(one).unwrap();
    assert_eq!(p.replication.as_ref().unwrap().replica_count, 1);
    assert!(p.replication.as_ref().unwrap().alias.is_none());
}

#[test]
fn replicated_consistency() {
    let e = parse(with(replicated(), "replica_count", json!(3))).unwrap_err();
    assert!(
        matches!(
            e,
            PropsError::ReplicaCount {
                replica_count: 3,
                replicas: 2
            }
        ),
        "{e}"
    );
    let e = parse(with(replicated(), "replica_count", json!(-2))).unwrap_err();
    assert_eq!(key_of(&e), "replica_count");
    let e = parse(without(replicated(), "replica_count")).unwrap_err();
    assert_eq!(key_of(&e), "replica_count");
    let e = parse(without(replicated(), "alias")).unwrap_err();
    assert_eq!(key_of(&e), "alias");
    let e = parse(with(replicated(), "alias", json!("../etc"))).unwrap_err();
    assert_eq!(key_of(&e), "alias");
    let e = parse(with(replicated(), "volume_replicas", json!([]))).unwrap_err();
    assert_eq!(key_of(&e), "volume_replicas");
    let e = parse(with(replicated(), "volume_replicas", json!({}))).unwrap_err();
    assert_eq!(key_of(&e), "volume_replicas");
    // Errors inside a replica name it.
    let mut v = replicated();
    v["volume_replicas"][1]["portals"][0][2] = json!("fc");
    let e = parse(v).unwrap_err();
    assert_eq!(key_of(&e), "volume_replicas[1].portals[0][2]");
    let mut v = replicated();
    v["volume_replicas"][0]
        .as_object_mut()
        .unwrap()
        .remove("vol_uuid");
    let e = parse(v).unwrap_err();
    assert!(
        matches!(&e, PropsError::NoIdentifier { at } if at == " volume_replicas[0]"),
        "{e}"
    );
    assert!(e.to_string().contains("volume_replicas[0]"), "{e}");
    // Two replicas on one subsystem are one leg twice.
    let mut v = replicated();
    v["volume_replicas"][1]["target_nqn"] = json!(SPDK1);
    let e = parse(v).unwrap_err();
    assert_eq!(key_of(&e), "volume_replicas[1].target_nqn");
    let mut v = replicated();
    v["volume_replicas"][0] = json!("x");
    assert_eq!(key_of(&parse(v).unwrap_err()), "volume_replicas[0]");
}

#[test]
fn transports() {
    for (given, want) in [
        ("tcp", NvmeTransport::Tcp),
        ("TCP", NvmeTransport::Tcp),
        ("rdma", NvmeTransport::Rdma),
        ("RDMA", NvmeTransport::Rdma),
        ("RoCEv2", NvmeTransport::Rdma),
        ("rocev2", NvmeTransport::Rdma),
    ] {
        let v = with(single(), "portals", json!([["10.0.0.1", 4420, given]]));
        let p = parse(v).unwrap();
        assert_eq!(p.single().unwrap().portals[0].transport, want, "{given}");
    }
    // os-brick would connect these over TCP; moor refuses them.
    for bad in ["fc", "loop", "iwarp", "", "tcp "] {
        let v = with(single(), "portals", json!([["10.0.0.1", 4420, bad]]));
        let e = parse(v).unwrap_err();
        assert_eq!(key_of(&e), "portals[0][2]", "{e}");
        assert!(e.to_string().contains("tcp, rdma or RoCEv2"), "{e}");
    }
    let e = parse(with(legacy(), "transport_type", json!("fc"))).unwrap_err();
    assert_eq!(key_of(&e), "transport_type");
}

#[test]
fn portals_and_ports() {
    let v = with(
        single(),
        "portals",
        json!([
            ["[fd00::1]", "4420", "tcp"],
            ["fd00::2", 4421, "rdma"],
            ["fd00::1", 4420, "tcp"]
        ]),
    );
    let p = parse(v).unwrap();
    let ps = &p.single().unwrap().portals;
    // The duplicate (same address, port and transport) is dropped.
    assert_eq!(ps.len(), 2);
    assert_eq!(ps[0].traddr.to_string(), "fd00::1");
    assert_eq!(ps[1].trsvcid, 4421);
    for (bad, key) in [
        (json!([["10.0.0.1", 0, "tcp"]]), "portals[0][1]"),
        (json!([["10.0.0.1", 65536, "tcp"]]), "portals[0][1]"),
        (json!([["10.0.0.1", "44x", "tcp"]]), "portals[0][1]"),
        (json!([["10.0.0.1", 4420.5, "tcp"]]), "portals[0][1]"),
        (json!([["array.example.com", 4420, "tcp"]]), "portals[0][0]"),
        (json!([["10.0.0.1;reboot", 4420, "tcp"]]), "portals[0][0]"),
        (json!([["10.0.0.1", 4420]]), "portals[0]"),
        (json!(["10.0.0.1:4420"]), "portals[0]"),
        (json!([]), "portals"),
        (json!("10.0.0.1"), "portals"),
    ] {
        let e = parse(with(single(), "portals", bad.clone())).unwrap_err();
        assert_eq!(key_of(&e), key, "{bad}: {e}");
    }
    let many: Vec<Value> = (0..65)
        .map(|i| json!([format!("10.0.0.{i}"), 4420, "tcp"]))
        .collect();
    let e = parse(with(single(), "portals", json!(many))).unwrap_err();
    assert_eq!(key_of(&e), "portals");
    assert_eq!(
        key_of(&parse(without(single(), "portals")).unwrap_err()),
        "portals"
    );
}

#[test]
fn identifiers_normalised() {
    let v = with(
        with(
            with(
                single(),
                "vol_uuid",
                json!("C20ABA216EF6446BB37445733B4883BA"),
            ),
            "volume_nguid",
            json!("F0E1D2C3-B4A5-9687-7869-5A4B3C2D1E0F"),
        ),
        "ns_id",
        json!(7),
    );
    let p = parse(v).unwrap();
    let id = p.single().unwrap().namespace;
    assert_eq!(id.uuid.unwrap().to_string(), VOL);
    assert_eq!(
        id.nguid.unwrap().to_string(),
        "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f"
    );
    assert_eq!(id.nsid.unwrap().get(), 7);
    for (k, bad) in [
        ("vol_uuid", json!("not-a-uuid")),
        ("vol_uuid", json!("00000000-0000-0000-0000-000000000000")),
        ("vol_uuid", json!(5)),
        ("volume_nguid", json!("abc")),
        ("ns_id", json!(0)),
        ("ns_id", json!("x")),
        ("ns_id", json!(true)),
    ] {
        let e = parse(with(single(), k, bad.clone())).unwrap_err();
        assert_eq!(key_of(&e), k, "{bad}: {e}");
    }
}

#[test]
fn refuses_without_a_verifiable_identifier() {
    let v = without(single(), "vol_uuid");
    let e = parse(v.clone()).unwrap_err();
    assert!(
        matches!(&e, PropsError::NoIdentifier { at } if at.is_empty()),
        "{e}"
    );
    assert!(
        e.to_string().contains("vol_uuid, volume_nguid or ns_id"),
        "{e}"
    );
    // null counts as absent.
    let e = parse(with(v.clone(), "ns_id", Value::Null)).unwrap_err();
    assert!(matches!(e, PropsError::NoIdentifier { .. }), "{e}");
    // Any one identifier is enough.
    assert!(parse(with(v.clone(), "ns_id", json!("3"))).is_ok());
    assert!(parse(with(v, "volume_nguid", json!(NGUID))).is_ok());
}

#[test]
fn nqns_checked() {
    let e = parse(with(single(), "target_nqn", json!("nqn.x y"))).unwrap_err();
    assert_eq!(key_of(&e), "target_nqn");
    let e = parse(with(
        single(),
        "target_nqn",
        json!("nqn.2016-06.io.spdk:a,b"),
    ))
    .unwrap_err();
    assert_eq!(key_of(&e), "target_nqn");
    let e = parse(with(single(), "host_nqn", json!("host-1"))).unwrap_err();
    assert_eq!(key_of(&e), "host_nqn");
    let e = parse(with(legacy(), "nqn", json!(3))).unwrap_err();
    assert_eq!(key_of(&e), "nqn");
    // Both spellings naming different subsystems is ambiguous; the same one is fine.
    let e = parse(with(single(), "nqn", json!(SPDK1))).unwrap_err();
    assert!(matches!(e, PropsError::Ambiguous { .. }), "{e}");
    assert!(parse(with(single(), "nqn", json!(NQN))).is_ok());
    let e = parse(json!({"vol_uuid": VOL})).unwrap_err();
    assert_eq!(key_of(&e), "target_nqn");
    assert!(matches!(
        parse(json!([1])),
        Err(PropsError::NotAnObject { found: "array" })
    ));
}

#[test]
fn reconnect_policy_presets_and_overrides() {
    assert_eq!(parse(single()).unwrap().policy.ctrl_loss_tmo_arg(), -1);
    let p = parse(with(single(), "reconnect_policy", json!("fail-fast"))).unwrap();
    assert_eq!(p.policy, ReconnectPolicy::FAIL_FAST);
    assert_eq!(p.policy.ctrl_loss_tmo_arg(), 600);
    let v = with(
        with(
            with(single(), "ctrl_loss_tmo", json!("120")),
            "reconnect_delay",
            json!(2),
        ),
        "fast_io_fail_tmo",
        json!(0),
    );
    let p = parse(v).unwrap().policy;
    assert_eq!(
        p,
        ReconnectPolicy {
            ctrl_loss_tmo: Some(120),
            reconnect_delay: 2,
            fast_io_fail_tmo: Some(0)
        }
    );
    // Explicit keys override the preset; -1 and "off" mean none.
    let v = with(
        with(single(), "reconnect_policy", json!("fail-fast")),
        "ctrl_loss_tmo",
        json!(-1),
    );
    let p = parse(with(v, "fast_io_fail_tmo", json!("off")))
        .unwrap()
        .policy;
    assert_eq!((p.ctrl_loss_tmo, p.fast_io_fail_tmo), (None, None));
    for (k, bad) in [
        ("reconnect_policy", json!("sometimes")),
        ("ctrl_loss_tmo", json!(-2)),
        ("ctrl_loss_tmo", json!(1.5)),
        ("ctrl_loss_tmo", json!("forever")),
        ("ctrl_loss_tmo", json!(3_000_000_000u64)),
        ("reconnect_delay", json!(0)),
        ("reconnect_delay", json!(-1)),
        ("fast_io_fail_tmo", json!([5])),
    ] {
        let e = parse(with(single(), k, bad.clone())).unwrap_err();
        assert_eq!(key_of(&e), k, "{bad}: {e}");
    }
    // I/O cannot fail over later than the controller disappears.
    let v = with(
        with(single(), "ctrl_loss_tmo", json!(10)),
        "fast_io_fail_tmo",
        json!(30),
    );
    let e = parse(v).unwrap_err();
    assert_eq!(key_of(&e), "fast_io_fail_tmo");
}

#[test]
fn generic_keys() {
    let v = with(
        with(
            with(single(), "access_mode", json!("ro")),
            "encrypted",
            json!(true),
        ),
        "enforce_multipath",
        json!(true),
    );
    let v = with(
        with(v, "device_path", json!("/dev/nvme0n1")),
        "volume_id",
        json!("vol-1"),
    );
    let v = with(
        with(v, "qos_specs", json!({"a": 1})),
        "cacheable",
        json!(false),
    );
    let p = parse(with(v, "discard", json!(true))).unwrap();
    assert_eq!(p.access_mode, AccessMode::ReadOnly);
    assert!(p.encrypted && p.enforce_multipath);
    assert_eq!(p.device_path.as_deref(), Some("/dev/nvme0n1"));
    assert_eq!(p.volume_id.as_deref(), Some("vol-1"));
    for (k, bad) in [
        ("access_mode", json!("rx")),
        ("encrypted", json!("yes")),
        ("enforce_multipath", json!(1)),
        ("device_path", json!("dev/nvme0n1")),
        ("device_path", json!("/dev/x\n")),
        ("volume_id", json!(5)),
    ] {
        let e = parse(with(single(), k, bad.clone())).unwrap_err();
        assert_eq!(key_of(&e), k, "{bad}: {e}");
    }
}
