//! The audit trail: one JSON line per request, appended to a root-only file (and
//! mirrored to the log). Secrets never reach it: they travel on a command's stdin
//! (the record says only that a secret was passed) or are written into an
//! open-iscsi record by moord (the record names the file and the key, never the
//! value).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One request's record.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Record {
    pub ts: String,
    /// `c<connection>-r<request id>`.
    pub request: String,
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    pub op: String,
    /// allowed-and-ran outcome (`ok`, `failed`, `timeout`, `client-gone`) or a refusal
    /// (`denied`, `forbidden`, `bad-request`, `busy`, `identity-mismatch`,
    /// `precondition-failed`, `error`).
    pub outcome: String,
    /// `file:line name` of the filter that allowed (or came closest to) it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The argv that ran (resolved executable first), or was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// The file written or read (canonical host path). For an iSCSI secret: the
    /// record file(s) edited, separated by a space.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The value written; for an iSCSI secret, the record key (never the secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The identity check made right before acting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardRecord>,
    /// `true` when a secret went to the command's stdin (its content is never logged).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub secret_stdin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub duration_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A [`crate::ops::Guard`] as audited.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GuardRecord {
    pub device: String,
    pub expected_wwid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
    /// An NVMe-oF controller's identity (`device` is `nvmeN`, `expected_wwid`
    /// empty): the fields of `nvme.disconnect`, flattened.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub nvme: Option<NvmeGuardRecord>,
    /// Several devices checked by one guard: an MD array's legs (`device` is
    /// `mdN`, `map` the array name), or every WWID of a guard over several legs
    /// (`md.create`, `md.assemble`: `device` is then the first leg).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberRecord>>,
}

/// One device of a guard over several, with the WWID it must carry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemberRecord {
    pub device: String,
    pub expected_wwid: String,
}

/// The expected identity of an NVMe-oF controller, as audited.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NvmeGuardRecord {
    pub expected_subsysnqn: String,
    pub expected_transport: String,
    pub expected_traddr: String,
    pub expected_trsvcid: u16,
    pub expected_hostnqn: String,
}

impl From<&crate::ops::Guard> for GuardRecord {
    fn from(g: &crate::ops::Guard) -> GuardRecord {
        match g {
            crate::ops::Guard::Wwid { device, expected } => GuardRecord {
                device: device.clone(),
                expected_wwid: expected.clone(),
                map: None,
                nvme: None,
                members: None,
            },
            crate::ops::Guard::StaleLink { link, device } => GuardRecord {
                device: device.clone(),
                expected_wwid: String::new(),
                map: Some(link.clone()),
                nvme: None,
                members: None,
            },
            crate::ops::Guard::DmMap {
                device,
                name,
                expected,
            } => GuardRecord {
                device: device.clone(),
                expected_wwid: expected.clone(),
                map: Some(name.clone()),
                nvme: None,
                members: None,
            },
            crate::ops::Guard::CryptMapping {
                name,
                backing,
                expected_wwid,
            } => GuardRecord {
                device: backing.clone(),
                expected_wwid: expected_wwid.clone(),
                map: Some(name.clone()),
                nvme: None,
                members: None,
            },
            // The identity part (always first); the audited argv names the rest.
            // A guard over several devices' WWIDs lists them all as members.
            crate::ops::Guard::All(gs) => {
                let mut rec = gs.first().map(GuardRecord::from).unwrap_or_default();
                let wwids: Vec<MemberRecord> = gs
                    .iter()
                    .filter_map(|g| match g {
                        crate::ops::Guard::Wwid { device, expected } => Some(MemberRecord {
                            device: device.clone(),
                            expected_wwid: expected.clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                if wwids.len() > 1 {
                    rec.members = Some(wwids);
                }
                rec
            }
            crate::ops::Guard::RegularFile { path }
            | crate::ops::Guard::Blank { path }
            | crate::ops::Guard::LuksOtherSlot { path, .. } => GuardRecord {
                device: path.clone(),
                expected_wwid: String::new(),
                map: None,
                nvme: None,
                members: None,
            },
            crate::ops::Guard::NvmeController {
                controller,
                subsysnqn,
                transport,
                traddr,
                trsvcid,
                hostnqn,
            } => GuardRecord {
                device: controller.to_string(),
                expected_wwid: String::new(),
                map: None,
                nvme: Some(NvmeGuardRecord {
                    expected_subsysnqn: subsysnqn.to_string(),
                    expected_transport: transport.to_string(),
                    expected_traddr: traddr.to_string(),
                    expected_trsvcid: *trsvcid,
                    expected_hostnqn: hostnqn.to_string(),
                }),
                members: None,
            },
            crate::ops::Guard::MdArray {
                device,
                name,
                members,
            } => GuardRecord {
                device: device.clone(),
                expected_wwid: String::new(),
                map: Some(name.clone()),
                nvme: None,
                members: Some(
                    members
                        .iter()
                        .map(|(device, wwid)| MemberRecord {
                            device: device.clone(),
                            expected_wwid: wwid.clone(),
                        })
                        .collect(),
                ),
            },
            // A DASD: its bus id, the uid it must carry (in `expected_wwid`, the
            // field every identity guard fills) and, when the op names it, its
            // disk `dasdX` (in `map`).
            crate::ops::Guard::DasdUid {
                busid,
                expected,
                device,
            } => GuardRecord {
                device: busid.to_string(),
                expected_wwid: expected.to_string(),
                map: device.clone(),
                nvme: None,
                members: None,
            },
            crate::ops::Guard::DasdStatus { busid, .. }
            | crate::ops::Guard::CcwDriver { busid, .. } => GuardRecord {
                device: busid.to_string(),
                ..GuardRecord::default()
            },
            // A zFCP unit: adapter, port and FCP LUN as one device name.
            crate::ops::Guard::ZfcpUnitUnused {
                busid,
                wwpn,
                fcp_lun,
            } => GuardRecord {
                device: format!("{busid}/{}/{fcp_lun}", wwpn.sysfs_form()),
                ..GuardRecord::default()
            },
            crate::ops::Guard::Unpartitioned { device } => GuardRecord {
                device: device.clone(),
                ..GuardRecord::default()
            },
            crate::ops::Guard::WwidUnused { wwid } => GuardRecord {
                expected_wwid: wwid.clone(),
                ..GuardRecord::default()
            },
        }
    }
}

#[derive(Debug, Default)]
pub struct Audit {
    file: Option<Mutex<File>>,
}

impl Audit {
    /// Append to `path` (created 0600), or only log when `None`.
    pub fn open(path: Option<&Path>) -> std::io::Result<Audit> {
        let file = match path {
            Some(p) => Some(Mutex::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(p)?,
            )),
            None => None,
        };
        Ok(Audit { file })
    }

    pub fn write(&self, mut r: Record) {
        r.ts = rfc3339_now();
        let mut line = serde_json::to_vec(&r).unwrap_or_default();
        line.push(b'\n');
        match &self.file {
            // With an audit file the log would only repeat it (and cost a write each).
            Some(_) => {
                tracing::debug!(target: "moord::audit", "{}", String::from_utf8_lossy(&line[..line.len() - 1]))
            }
            None => {
                tracing::info!(target: "moord::audit", "{}", String::from_utf8_lossy(&line[..line.len() - 1]))
            }
        }
        if let Some(f) = &self.file {
            // One write of a whole line to an O_APPEND file: lines never interleave.
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = f.write_all(&line) {
                tracing::error!("audit log write failed: {e}");
            }
        }
    }
}

/// UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = crate::civil::date(secs);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::GuardRecord;
    use crate::ops::Guard;

    #[test]
    fn guard_records() {
        let wwid = Guard::Wwid {
            device: "sdb".into(),
            expected: "3600".into(),
        };
        assert_eq!(
            serde_json::to_value(GuardRecord::from(&wwid)).unwrap(),
            serde_json::json!({"device": "sdb", "expected_wwid": "3600"})
        );
        let nvme = Guard::NvmeController {
            controller: "nvme3".parse().unwrap(),
            subsysnqn: "nqn.2016-06.io.spdk:cnode1".parse().unwrap(),
            transport: "rdma".parse().unwrap(),
            traddr: "fd00:0::1".parse().unwrap(),
            trsvcid: 4420,
            hostnqn: "nqn.2014-08.org.example:host-1".parse().unwrap(),
        };
        assert_eq!(
            serde_json::to_value(GuardRecord::from(&nvme)).unwrap(),
            serde_json::json!({
                "device": "nvme3",
                "expected_wwid": "",
                "expected_subsysnqn": "nqn.2016-06.io.spdk:cnode1",
                "expected_transport": "rdma",
                "expected_traddr": "fd00::1",
                "expected_trsvcid": 4420,
                "expected_hostnqn": "nqn.2014-08.org.example:host-1",
            })
        );
        let md = Guard::MdArray {
            device: "md127".into(),
            name: "vol-1".into(),
            members: vec![
                ("nvme0n1".into(), "uuid.a".into()),
                ("nvme1n1".into(), "uuid.b".into()),
            ],
        };
        assert_eq!(
            serde_json::to_value(GuardRecord::from(&md)).unwrap(),
            serde_json::json!({
                "device": "md127",
                "expected_wwid": "",
                "map": "vol-1",
                "members": [
                    {"device": "nvme0n1", "expected_wwid": "uuid.a"},
                    {"device": "nvme1n1", "expected_wwid": "uuid.b"},
                ],
            })
        );
        // md.create's guard: every leg's WWID and blankness; the legs are listed.
        let leg = |d: &str, w: &str| {
            [
                Guard::Wwid {
                    device: d.into(),
                    expected: w.into(),
                },
                Guard::Blank {
                    path: format!("/dev/{d}"),
                },
            ]
        };
        let create = Guard::All([leg("nvme0n1", "uuid.a"), leg("nvme1n1", "uuid.b")].concat());
        assert_eq!(
            serde_json::to_value(GuardRecord::from(&create)).unwrap(),
            serde_json::json!({
                "device": "nvme0n1",
                "expected_wwid": "uuid.a",
                "members": [
                    {"device": "nvme0n1", "expected_wwid": "uuid.a"},
                    {"device": "nvme1n1", "expected_wwid": "uuid.b"},
                ],
            })
        );
        // One device's guards (luks.format: WWID then blank) stay one record.
        let format = Guard::All(leg("sdb", "3600").to_vec());
        assert_eq!(
            serde_json::to_value(GuardRecord::from(&format)).unwrap(),
            serde_json::json!({"device": "sdb", "expected_wwid": "3600"})
        );
        // dasd.format: the bus id, the uid and the disk, then the state check.
        let busid = "0.0.b100".parse().unwrap();
        let dasd = Guard::All(vec![
            Guard::DasdUid {
                busid,
                expected: "IBM.750000000DXP71.2300.05".parse().unwrap(),
                device: Some("dasdb".into()),
            },
            Guard::DasdStatus {
                busid,
                status: "unformatted",
            },
        ]);
        assert_eq!(
            serde_json::to_value(GuardRecord::from(&dasd)).unwrap(),
            serde_json::json!({"device": "0.0.b100",
                "expected_wwid": "IBM.750000000DXP71.2300.05", "map": "dasdb"})
        );
        let online = Guard::CcwDriver {
            busid,
            driver: "dasd-eckd",
        };
        assert_eq!(
            serde_json::to_value(GuardRecord::from(&online)).unwrap(),
            serde_json::json!({"device": "0.0.b100", "expected_wwid": ""})
        );
    }

    #[test]
    fn timestamp_shape() {
        let t = super::rfc3339_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
