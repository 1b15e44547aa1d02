use serde_json::json;

use super::*;

fn w(s: &str) -> Wwpn {
    s.parse().unwrap()
}

fn parse(v: serde_json::Value) -> Result<FcProps, PropsError> {
    FcProps::from_connection_info(&v)
}

#[test]
fn os_brick_example_with_initiator_map() {
    // reference/os-brick.md §2.2.
    let p = parse(json!({"driver_volume_type": "fibre_channel", "data": {
        "target_discovered": false, "target_luns": [1, 2],
        "target_wwns": ["20210002AC00383D", "20220002AC00383D"],
        "initiator_target_map": {
            "100010604b010459": ["20210002AC00383D", "20220002AC00383D"],
            "100010604b01045d": ["20210002AC00383D", "20220002AC00383D"]},
        "enable_wildcard_scan": false, "access_mode": "rw", "encrypted": false}}))
    .unwrap();
    assert_eq!(
        p.targets,
        [
            FcTarget {
                wwpn: w("20210002ac00383d"),
                lun: Lun(1)
            },
            FcTarget {
                wwpn: w("20220002ac00383d"),
                lun: Lun(2)
            }
        ]
    );
    let map = p.initiator_target_map.as_ref().unwrap();
    assert_eq!(map.len(), 2);
    assert_eq!(p.targets_for(w("100010604b010459")).len(), 2);
    assert!(p.targets_for(w("100010604b0104ff")).is_empty());
    assert!(!p.enable_wildcard_scan);
}

#[test]
fn legacy_target_wwn_string_or_list_and_lun_forms() {
    let p = parse(json!({"target_wwn": "0x500507630B1B41C3", "target_lun": "3"})).unwrap();
    assert_eq!(p.targets.len(), 1);
    assert_eq!(p.targets[0].wwpn.to_string(), "500507630b1b41c3");
    assert_eq!(p.targets[0].lun, Lun(3));
    // A list in target_wwn, one LUN for every port, duplicates dropped.
    let p = parse(
        json!({"target_wwn": ["1234567890123456", "1234567890123456", "1234567890123457"],
                         "target_lun": 7}),
    )
    .unwrap();
    assert_eq!(p.targets.len(), 2);
    assert!(p.targets.iter().all(|t| t.lun == Lun(7)));
    // No LUN at all: 0, as os-brick.
    let p = parse(json!({"target_wwns": ["1234567890123456"]})).unwrap();
    assert_eq!(p.targets[0].lun, Lun(0));
    // target_wwns wins over target_wwn.
    let p = parse(json!({"target_wwns": ["1234567890123456"], "target_wwn": "6543210987654321"}))
        .unwrap();
    assert_eq!(p.targets[0].wwpn, w("1234567890123456"));
    // Wildcard scans only when asked.
    let p = parse(json!({"target_wwn": "1234567890123456", "enable_wildcard_scan": true})).unwrap();
    assert!(p.enable_wildcard_scan);
}

#[test]
fn addressing_mode_translates_luns() {
    let p = parse(json!({"target_wwn": "1234567890123456", "target_lun": 300,
                         "addressing_mode": "SAM2"}))
    .unwrap();
    assert_eq!(p.targets[0].lun, Lun(16384 + 300));
    let e = parse(
        json!({"target_wwn": "1234567890123456", "target_lun": 20000,
                         "addressing_mode": "SAM3-flat"}),
    )
    .unwrap_err();
    assert!(matches!(e, PropsError::Lun { .. }), "{e}");
}

#[test]
fn fcp_luns_in_hex_are_taken_as_they_are() {
    // A DS8000 FCP LUN: Linux LUN 0x400a4020 (the kernel's mapping), whatever the
    // addressing mode says; decimal LUNs still follow it.
    let p = parse(
        json!({"target_wwns": ["1234567890123456", "1234567890123457"],
                         "target_luns": ["0x4020400A00000000", 300],
                         "addressing_mode": "SAM2"}),
    )
    .unwrap();
    assert_eq!(p.targets[0].lun, Lun(0x400a_4020));
    assert_eq!(p.targets[1].lun, Lun(16384 + 300));
    let e = parse(json!({"target_wwn": "1234567890123456", "target_lun": "0x4020"})).unwrap_err();
    assert!(matches!(e, PropsError::FcpLun { .. }), "{e}");
}

#[test]
fn bad_properties_name_the_key() {
    for (v, needle) in [
        (json!({}), "target_wwn"),
        (json!({"target_wwns": []}), "target_wwn"),
        (json!({"target_wwn": "12345"}), "target_wwn"),
        (json!({"target_wwn": 12}), "target_wwn"),
        (
            json!({"target_wwns": ["1234567890123456", "x"]}),
            "target_wwns[1]",
        ),
        (
            json!({"target_wwn": "1234567890123456", "target_lun": -1}),
            "target_lun",
        ),
        (
            json!({"target_wwn": "1234567890123456", "target_lun": "1a"}),
            "target_lun",
        ),
        (
            json!({"target_wwns": ["1234567890123456", "1234567890123457"], "target_luns": [1, 2, 3]}),
            "target_luns",
        ),
        (
            json!({"target_wwn": "1234567890123456", "initiator_target_map": ["x"]}),
            "initiator_target_map",
        ),
        (
            json!({"target_wwn": "1234567890123456", "initiator_target_map": {"zz": []}}),
            "initiator_target_map.zz",
        ),
        (
            json!({"target_wwn": "1234567890123456", "enable_wildcard_scan": "yes"}),
            "enable_wildcard_scan",
        ),
        (
            json!({"target_wwn": "1234567890123456", "addressing_mode": "flat"}),
            "addressing_mode",
        ),
        (
            json!({"target_wwn": "1234567890123456", "access_mode": "rwx"}),
            "access_mode",
        ),
        (json!([1]), "JSON object"),
    ] {
        let e = parse(v.clone()).unwrap_err().to_string();
        assert!(e.contains(needle), "{v}: {e}");
    }
}

#[test]
fn unknown_targets_in_the_map_are_not_scanned() {
    let p = parse(json!({"target_wwns": ["1234567890123456"], "target_lun": 1,
        "initiator_target_map": {"100010604b010459": ["1234567890123456", "9999999999999999"]}}))
    .unwrap();
    assert_eq!(
        p.initiator_target_map.unwrap()[&w("100010604b010459")],
        [w("1234567890123456")]
    );
}
