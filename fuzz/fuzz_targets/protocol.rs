//! Arbitrary bytes through moord's protocol decoders: as a stream of frames
//! (`read_frame` / `decode_body`), each JSON frame as a client message (`ClientMsg`) and
//! a server message, and each request's `op`/`args` through `ops::plan`, as moord does
//! with what a client sends. Nothing may panic, and what decodes must be consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moor_privhelper::ops::{self, Guard, OPS, Plan};
use moor_privhelper::protocol::{self, CHAN_STDERR, ClientMsg, Frame, MAX_FRAME, ServerMsg};
use serde_json::Value;

/// A guard names a whole block device (it becomes a sysfs path component).
fn check_guard(g: &Guard) {
    let device = match g {
        Guard::Wwid { device, .. } | Guard::DmMap { device, .. } => device,
        Guard::StaleLink { link, device } => {
            assert!(link.starts_with("/dev/disk/by-"), "stale link {link:?}");
            device
        }
        Guard::CryptMapping { name, backing, .. } => {
            assert!(name.starts_with("crypt-"), "mapping {name:?}");
            backing
        }
        Guard::All(guards) => return guards.iter().for_each(check_guard),
        Guard::MdArray {
            device,
            name,
            members,
        } => {
            // mdN, a valid array name (`/dev/md/NAME` is read as a link), and
            // 1..=4 distinct NVMe namespaces with WWIDs.
            assert!(device.starts_with("md"), "MD guard on {device:?}");
            assert!(
                name.parse::<moor_types::MdName>().is_ok(),
                "MD guard on name {name:?}"
            );
            assert!(
                (1..=ops::MAX_LEGS).contains(&members.len()),
                "MD guard with {} members",
                members.len()
            );
            for (i, (leg, wwid)) in members.iter().enumerate() {
                assert!(
                    leg.starts_with("nvme") && moor_types::is_block_device_name(leg),
                    "MD guard on leg {leg:?}"
                );
                assert!(
                    !wwid.is_empty() && wwid.bytes().all(|b| b.is_ascii_graphic() && b != b'/'),
                    "MD guard with WWID {wwid:?}"
                );
                assert!(
                    members[..i].iter().all(|(other, _)| other != leg),
                    "MD guard with {leg} twice"
                );
            }
            device
        }
        Guard::Blank { path } if path.starts_with("/dev/nvme") => {
            // md.create's legs: a whole namespace's node, never a partition or path.
            let name = &path["/dev/".len()..];
            return assert!(
                moor_types::is_block_device_name(name),
                "blank guard on {path:?}"
            );
        }
        Guard::RegularFile { path } | Guard::Blank { path } | Guard::LuksOtherSlot { path, .. } => {
            return assert!(ops::is_canonical_path(path), "guard on {path:?}");
        }
        Guard::NvmeController {
            controller,
            subsysnqn,
            hostnqn,
            trsvcid,
            ..
        } => {
            // The name becomes a sysfs path component; the NQNs are compared with
            // attribute values, so they must be what the kernel could print.
            let name = controller.to_string();
            assert!(
                name.strip_prefix("nvme")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
                "guard on controller {name:?}"
            );
            for nqn in [subsysnqn, hostnqn] {
                let s = nqn.as_str();
                assert!(
                    s.starts_with("nqn.") && !s.contains(|c: char| c.is_whitespace() || c == ','),
                    "guard with NQN {s:?}"
                );
            }
            return assert_ne!(*trsvcid, 0, "guard on port 0");
        }
        Guard::DasdUid {
            busid,
            expected,
            device,
        } => {
            // The bus id and uid are compared with (and the bus id joined into)
            // sysfs paths: they must be what the kernel prints.
            assert_ccw_busid(&busid.to_string());
            let uid = expected.as_str();
            assert!(
                (4..=5).contains(&uid.split('.').count())
                    && uid
                        .split('.')
                        .all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric())),
                "DASD guard with uid {uid:?}"
            );
            match device {
                Some(d) => d,
                None => return,
            }
        }
        Guard::DasdStatus { busid, status } => {
            assert_ccw_busid(&busid.to_string());
            return assert!(
                ["unformatted", "online"].contains(status),
                "DASD status guard {status:?}"
            );
        }
        Guard::CcwDriver { busid, driver } => {
            assert_ccw_busid(&busid.to_string());
            return assert_eq!(*driver, "dasd-eckd", "driver guard");
        }
        Guard::ZfcpUnitUnused {
            busid,
            wwpn,
            fcp_lun,
        } => {
            // All three are compared with sysfs values, never joined into a path.
            assert_ccw_busid(&busid.to_string());
            assert_eq!(wwpn.sysfs_form().len(), 18, "zfcp guard wwpn");
            return assert_eq!(fcp_lun.to_string().len(), 18, "zfcp guard fcp lun");
        }
        Guard::Unpartitioned { device } => device,
        Guard::WwidUnused { wwid } => {
            // Compared with sysfs values, never joined into a path.
            return assert!(!wwid.is_empty() && !wwid.contains('/'), "wwid guard {wwid:?}");
        }
    };
    assert!(
        moor_types::is_block_device_name(device),
        "guard on {device:?}"
    );
}

/// A CCW bus id as the kernel prints it: `css.ssid.devno`, lower-case hex, four
/// devno digits (one path component).
fn assert_ccw_busid(b: &str) {
    let parts: Vec<&str> = b.split('.').collect();
    assert!(
        parts.len() == 3
            && parts[2].len() == 4
            && parts.iter().all(|p| {
                !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            }),
        "guard on bus id {b:?}"
    );
}

/// Check what a plan promises the daemon.
fn check_plan(p: &Plan) {
    match p {
        Plan::Ping | Plan::Metrics => {}
        Plan::IscsiSecret(r) => {
            // Every entry becomes one `key = value` line of a record file.
            assert!(!r.entries.is_empty(), "record edit without entries");
            for e in &r.entries {
                let v = e.value.expose();
                assert!(
                    !v.bytes().any(|b| b.is_ascii_control()),
                    "record value with a control character"
                );
                assert!(
                    e.key.starts_with("node.") || e.key.starts_with("discovery."),
                    "record key {}",
                    e.key
                );
                assert_eq!(
                    e.secret,
                    e.key.ends_with(".auth.password") || e.key.ends_with(".auth.password_in"),
                    "secret flag of {}",
                    e.key
                );
            }
        }
        Plan::Exec(e) => {
            if let Some(g) = &e.guard {
                check_guard(g);
            }
            assert!(!e.argv.is_empty(), "exec plan with an empty argv");
            assert!(
                e.argv.iter().all(|a| !a.contains('\0')),
                "exec plan with a NUL"
            );
            assert!(
                !(e.stream && (e.stdin.is_some() || e.secret_stdin.is_some())),
                "streamed exec with inline stdin"
            );
        }
        Plan::ReadFile { path } => assert!(ops::is_canonical_path(path), "file.read of {path:?}"),
        Plan::CreateFile { path, value } => {
            // Only the host's NVMe identity files are ever created.
            assert!(
                [ops::HOSTNQN_PATH, ops::HOSTID_PATH].contains(&path.as_str()),
                "create of {path:?}"
            );
            assert!(
                !value.is_empty()
                    && value.len() <= 223
                    && !value.bytes().any(|b| b.is_ascii_control() || b == b' '),
                "created value {value:?}"
            );
        }
        Plan::WriteFile { path, value, guard } => {
            if let Some(g) = guard {
                check_guard(g);
            }
            assert!(
                path.starts_with("/sys/") && ops::is_canonical_path(path),
                "sysfs.write to {path:?}"
            );
            assert!(
                value.len() <= 4096 && !value.contains('\0'),
                "sysfs.write value"
            );
        }
    }
}

/// One JSON message body, as moord and its clients would see it.
fn json_message(body: &[u8]) {
    if let Ok(msg) = serde_json::from_slice::<ClientMsg>(body) {
        // What decodes re-encodes to the same message.
        let frame = protocol::encode_json(&msg);
        match protocol::read_frame(&mut &frame[..]) {
            Ok(Frame::Json(j)) => {
                let again: ClientMsg =
                    serde_json::from_slice(&j).expect("re-encoded message decodes");
                assert_eq!(again, msg, "client message round trip");
            }
            other => panic!("re-encoded message is not one JSON frame: {other:?}"),
        }
        match &msg {
            ClientMsg::Request { op, args, .. } => {
                if let Ok(p) = ops::plan(op, &args.to_string()) {
                    check_plan(&p);
                }
            }
            ClientMsg::Auth { cnonce, mac } => {
                let _ = protocol::from_hex(cnonce);
                if let Some(m) = mac {
                    let expected =
                        protocol::client_proof(b"0123456789abcdef", &[0; 32], cnonce.as_bytes());
                    let _ = protocol::verify_proof(&expected, m);
                }
            }
        }
    }
    let _ = serde_json::from_slice::<ServerMsg>(body);
    // moord keeps `args` as raw JSON text and plans from it.
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body)
        && let Some(op) = m.get("op").and_then(Value::as_str)
    {
        let args = m
            .get("args")
            .map_or_else(|| "null".to_string(), Value::to_string);
        if let Ok(p) = ops::plan(op, &args) {
            check_plan(&p);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. A stream of frames, as moord reads a connection.
    let mut rest = data;
    for _ in 0..64 {
        match protocol::read_frame(&mut rest) {
            Ok(Frame::Json(j)) => json_message(&j),
            Ok(Frame::Data { id, chan, bytes }) => {
                assert!(chan <= CHAN_STDERR, "data frame on channel {chan}");
                assert!(bytes.len() < MAX_FRAME);
                let f = protocol::encode_data(id, chan, &bytes);
                let again =
                    protocol::read_frame(&mut &f[..]).expect("re-encoded data frame decodes");
                assert_eq!(
                    again,
                    Frame::Data { id, chan, bytes },
                    "data frame round trip"
                );
            }
            Err(_) => break,
        }
    }
    // 2. The input as one frame body, and as one message.
    if let Ok(Frame::Json(j)) = protocol::decode_body(data.to_vec()) {
        json_message(&j);
    }
    json_message(data);
    // 3. Raw `op NUL args` text straight into the planner (not necessarily JSON).
    if let Ok(text) = std::str::from_utf8(data) {
        let (op, args) = text.split_once('\0').unwrap_or(("exec", text));
        if let Ok(p) = ops::plan(op, args) {
            check_plan(&p);
        }
        for e in OPS {
            if let Ok(p) = (e.plan)(args) {
                check_plan(&p);
            }
        }
    }
});
