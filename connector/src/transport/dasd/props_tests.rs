use super::*;
use serde_json::json;

const UID: &str = "IBM.750000000DXP71.2300.05";

fn parse(v: Value) -> Result<DasdProps, PropsError> {
    DasdProps::from_connection_info(&v)
}

#[test]
fn bus_id_in_every_spelling_and_the_wrapped_form() {
    for v in [
        json!({"device_id": "0.0.b100"}),
        json!({"bus_id": "0.0.B100"}),
        json!({"busid": "b100"}),
        json!({"device_id": "0xb100"}),
        json!({"device_id": "0.0.b100", "busid": "b100"}),
        json!({"driver_volume_type": "fibre_channel_eckd", "data": {"device_id": "0.0.b100"}}),
    ] {
        let p = parse(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(
            p.busid.map(|b| b.to_string()).as_deref(),
            Some("0.0.b100"),
            "{v}"
        );
        assert_eq!(p.uid, None);
        assert_eq!((p.subsystem_id, p.unit_address), (None, None));
        assert!(!p.format_if_unformatted && !p.partition_after_format);
        assert_eq!(p.access_mode, AccessMode::ReadWrite);
    }
}

#[test]
fn uid_flags_and_generic_keys() {
    let p = parse(json!({
        "device_id": "0.1.c0fe", "uid": "IBM.750000000DXP71.2300.05",
        "format_if_unformatted": true, "partition_after_format": true,
        "access_mode": "ro", "volume_id": "vol-1", "encrypted": false,
        "enforce_multipath": true, "device_path": null,
    }))
    .unwrap();
    assert_eq!(p.busid.map(|b| b.to_string()).as_deref(), Some("0.1.c0fe"));
    assert_eq!(p.uid.unwrap().as_str(), UID);
    assert!(p.format_if_unformatted && p.partition_after_format);
    assert_eq!(p.access_mode, AccessMode::ReadOnly);
    assert_eq!(p.volume_id.as_deref(), Some("vol-1"));
    assert!(p.enforce_multipath);
}

fn err(v: Value) -> String {
    parse(v.clone())
        .map(|p| panic!("{v} was accepted: {p:?}"))
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_input_names_the_key() {
    for (v, needle) in [
        (json!([]), "must be a JSON object"),
        (json!({}), "missing connection property device_id"),
        (
            json!({"device_id": null}),
            "missing connection property device_id",
        ),
        (json!({"device_id": 45312}), "device_id must be a string"),
        (
            json!({"device_id": "0.0.b1000"}),
            "device_id: invalid CCW bus id",
        ),
        (
            json!({"device_id": "0.4.b100"}),
            "device_id: invalid CCW bus id",
        ),
        (
            json!({"busid": "0.0.b100-0.0.b1ff"}),
            "busid: invalid CCW bus id",
        ),
        (json!({"bus_id": "all"}), "bus_id: invalid CCW bus id"),
        (json!({"device_id": "../0.0.b100"}), "invalid CCW bus id"),
        (
            json!({"device_id": "0.0.b100", "bus_id": "0.0.b101"}),
            "device_id (0.0.b100) and bus_id (0.0.b101) name different devices",
        ),
        (
            json!({"device_id": "0.0.b100", "uid": 5}),
            "uid must be a string",
        ),
        (
            json!({"device_id": "0.0.b100", "uid": "IBM.750000000DXP71"}),
            "connection property uid: invalid DASD uid",
        ),
        (
            json!({"device_id": "0.0.b100", "format_if_unformatted": "yes"}),
            "format_if_unformatted must be a boolean",
        ),
        (
            json!({"device_id": "0.0.b100", "partition_after_format": true}),
            "partition_after_format needs format_if_unformatted",
        ),
        (
            json!({"device_id": "0.0.b100", "access_mode": "rwx"}),
            "access_mode has invalid value",
        ),
        (
            json!({"device_id": "0.0.b100", "device_path": "dev/dasdb"}),
            "device_path has invalid value",
        ),
        (
            json!({"control_unit": "0.0.b100", "unit_address": "05"}),
            "control_unit is not supported",
        ),
        (
            json!({"device_id": "0.0.b100", "cu": "2300"}),
            "cu is not supported",
        ),
        (
            json!({"device_id": "0.0.b100", "unit_address": "5"}),
            "unit_address: \"5\" is not a unit address (2 hex digits",
        ),
        (
            json!({"device_id": "0.0.b100", "ua": "005"}),
            "ua: \"005\" is not a unit address",
        ),
        (
            json!({"device_id": "0.0.b100", "ua": "xx"}),
            "ua: \"xx\" is not a unit address",
        ),
        (
            json!({"device_id": "0.0.b100", "ua": "0x"}),
            "ua: \"0x\" is not a unit address",
        ),
        (
            json!({"device_id": "0.0.b100", "unit_address": 5}),
            "unit_address must be a string (2 hex digits",
        ),
        (
            json!({"device_id": "0.0.b100", "subsystem_id": "230"}),
            "subsystem_id: \"230\" is not a storage subsystem id (4 hex digits",
        ),
        (
            json!({"device_id": "0.0.b100", "subsystem_id": "0x2300"}),
            "is not a storage subsystem id",
        ),
        (
            json!({"device_id": "0.0.b100", "subsystem_id": "+230"}),
            "is not a storage subsystem id",
        ),
        (
            json!({"device_id": "0.0.b100", "subsystem_id": 2300}),
            "subsystem_id must be a string (4 hex digits",
        ),
        (
            json!({"device_id": "0.0.b100", "unit_address": "05", "ua": "06"}),
            "unit_address (05) and ua (06) name different devices",
        ),
        (
            json!({"unit_address": "05"}),
            "unit_address needs subsystem_id without device_id",
        ),
        (
            json!({"subsystem_id": "2300"}),
            "subsystem_id needs unit_address without device_id",
        ),
        (json!({"uid": UID}), "missing connection property device_id"),
        (
            json!({"subsystem_id": "2300", "unit_address": "05", "uid": "IBM.750000000DXP71.2301.05"}),
            "subsystem_id (2300) and uid (IBM.750000000DXP71.2301.05) name different devices",
        ),
        (
            json!({"device_id": "0.0.b100", "unit_address": "06", "uid": UID}),
            "unit_address (06) and uid (IBM.750000000DXP71.2300.05) name different devices",
        ),
    ] {
        let msg = err(v.clone());
        assert!(msg.contains(needle), "{v}: {msg}");
    }
}

#[test]
fn a_top_level_bus_id_wins_over_data() {
    // A flat dict that happens to carry a `data` key is read as the dict itself.
    let p = parse(json!({"device_id": "0.0.b100", "data": {"device_id": "0.0.b200"}})).unwrap();
    let q = parse(json!({"subsystem_id": "2300", "ua": "05", "data": {"device_id": "0.0.b200"}}))
        .unwrap();
    assert_eq!(q.busid, None);
    assert_eq!(p.busid.map(|b| b.to_string()).as_deref(), Some("0.0.b100"));
}

#[test]
fn subsystem_id_and_unit_address_in_every_spelling() {
    for v in [
        json!({"device_id": "0.0.b100", "subsystem_id": "2300", "unit_address": "05"}),
        json!({"device_id": "0.0.b100", "subsystem_id": "2300", "ua": "05"}),
        json!({"subsystem_id": "2300", "unit_address": "05", "ua": "05"}),
        json!({"subsystem_id": "2300", "unit_address": "05", "uid": UID}),
        json!({"driver_volume_type": "fibre_channel_eckd",
               "data": {"subsystem_id": "2300", "ua": "05"}}),
    ] {
        let p = parse(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(
            p.subsystem_id.map(|s| s.to_string()).as_deref(),
            Some("2300"),
            "{v}"
        );
        assert_eq!(
            p.unit_address.map(|u| u.to_string()).as_deref(),
            Some("05"),
            "{v}"
        );
    }
    // Hex in either case, printed as the kernel prints the uid.
    let p = parse(json!({"subsystem_id": "E9Ab", "ua": "8A"})).unwrap();
    assert_eq!(p.busid, None);
    assert_eq!(
        (
            p.subsystem_id.unwrap().to_string(),
            p.unit_address.unwrap().to_string()
        ),
        ("e9ab".to_string(), "8a".to_string())
    );
    // Checks alone, with a bus id.
    let p = parse(json!({"device_id": "b100", "ua": "00"})).unwrap();
    assert_eq!(
        (p.subsystem_id, p.unit_address.map(|u| u.to_string())),
        (None, Some("00".into()))
    );
}

#[test]
fn what_a_uid_carries_is_compared_with_the_address() {
    let uid: DasdUid = UID.parse().unwrap();
    let p = parse(json!({"subsystem_id": "2300", "unit_address": "05"})).unwrap();
    assert_eq!(p.address_mismatch(&uid), None);
    assert!(p.names(&uid));
    let other: DasdUid = "IBM.750000000DXP71.2300.06".parse().unwrap();
    assert_eq!(
        p.address_mismatch(&other),
        Some(("unit_address", "05".into(), "06".into()))
    );
    assert!(!p.names(&other));
    let other: DasdUid = "IBM.750000000DXP71.2301.05".parse().unwrap();
    assert_eq!(
        p.address_mismatch(&other),
        Some(("subsystem_id", "2300".into(), "2301".into()))
    );
    // Another storage server with the same subsystem id and unit address.
    let twin: DasdUid = "IBM.75000000092461.2300.05".parse().unwrap();
    assert!(p.names(&twin));
    let p = parse(json!({"subsystem_id": "2300", "unit_address": "05", "uid": UID})).unwrap();
    assert!(p.names(&uid) && !p.names(&twin));
    // The virtual device unit id is left to the uid check after the lookup.
    let minidisk: DasdUid = format!("{UID}.00ff").parse().unwrap();
    assert!(p.names(&minidisk));
    // With a bus id and no address there is nothing to look up by.
    let p = parse(json!({"device_id": "0.0.b100"})).unwrap();
    assert_eq!(p.address_mismatch(&uid), None);
    assert!(!p.names(&uid));
}
