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
        assert_eq!(p.busid.to_string(), "0.0.b100", "{v}");
        assert_eq!(p.uid, None);
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
    assert_eq!(p.busid.to_string(), "0.1.c0fe");
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
            json!({"device_id": "0.0.b100", "unit_address": "05"}),
            "unit_address is not supported",
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
    assert_eq!(p.busid.to_string(), "0.0.b100");
}
