//! s390x ECKD DASD operations (FICON-attached volumes, protocol
//! `fibre_channel_eckd`): make a device visible (`cio_ignore`), set it online or
//! (safely) offline (`chccwdev`), format an unformatted volume (`dasdfmt`) and give
//! a fresh one a partition (`fdasd`). Every argv is built here from a validated
//! [`CcwBusId`] (printed as the kernel names the device: `0.0.b100`), a [`DasdUid`]
//! and a `dasdX` block device name.
//!
//! Guards, checked by moord right before the command runs:
//!
//! * `dasd.online`: the CCW device is driven by `dasd-eckd` ([`Guard::CcwDriver`]):
//!   moord never sets another kind of CCW device (a network or FCP adapter) online;
//! * `dasd.safe_offline`, `dasd.offline`: the device still carries the uid the
//!   caller captured at attach ([`Guard::DasdUid`]);
//! * `dasd.format`: the uid, `dasdX` being the device's disk, and the device being
//!   `unformatted` ([`Guard::DasdStatus`]): moord never formats a formatted DASD;
//! * `dasd.partition`: the uid, the disk, status `online` and no partition yet
//!   ([`Guard::Unpartitioned`]).
//!
//! `dasd.free` has no guard: it only takes a device number off the channel
//! subsystem's ignore list, which makes the device visible (offline).

use moor_types::{CcwBusId, DasdUid};
use serde::{Deserialize, Serialize};

use super::{DevKind, Guard, OpError, Plan, TypedOp, check_device, exec_plan};

/// The one driver moord sets devices online for: ECKD DASDs.
pub const DASD_ECKD_DRIVER: &str = "dasd-eckd";

/// The block size `dasd.format` writes (the recommended one; os-brick's reference
/// procedure and curtin use it too).
pub const DASD_BLOCK_SIZE: u32 = 4096;

/// Take `busid` off the channel subsystem's ignore list: `cio_ignore -r BUSID`
/// (s390-tools writes `free BUSID` to `/proc/cio_ignore`, then waits for the common
/// I/O layer to settle, so the device is registered when the command returns).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DasdFree {
    pub busid: CcwBusId,
}

impl TypedOp for DasdFree {
    const NAME: &'static str = "dasd.free";
}

impl DasdFree {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(exec_plan(argv(&["cio_ignore", "-r"], self.busid), None))
    }
}

/// Set `busid` online: `chccwdev -e BUSID`. chccwdev first waits for the common I/O
/// layer to settle (`/proc/cio_settle`), then writes `1` to the device's `online`
/// attribute and re-reads it (a driver may finish asynchronously): exit 0 means the
/// device is online (or already was). Guard: the device is driven by `dasd-eckd`.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DasdOnline {
    pub busid: CcwBusId,
}

impl TypedOp for DasdOnline {
    const NAME: &'static str = "dasd.online";
}

impl DasdOnline {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(exec_plan(
            argv(&["chccwdev", "-e"], self.busid),
            Some(Guard::CcwDriver {
                busid: self.busid,
                driver: DASD_ECKD_DRIVER,
            }),
        ))
    }
}

/// Set `busid` offline safely: `chccwdev -s BUSID` (the `safe_offline` attribute:
/// the kernel syncs the block device, waits until every queued request is done,
/// then sets the device offline; a device that is open — mounted, held — is refused
/// with EBUSY and stays online). Guard: the uid is still `expected_uid`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DasdSafeOffline {
    pub busid: CcwBusId,
    pub expected_uid: DasdUid,
}

impl TypedOp for DasdSafeOffline {
    const NAME: &'static str = "dasd.safe_offline";
}

impl DasdSafeOffline {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(exec_plan(
            argv(&["chccwdev", "-s"], self.busid),
            Some(uid_guard(self.busid, self.expected_uid, None)),
        ))
    }
}

/// Set `busid` offline without waiting for outstanding I/O: `chccwdev -d BUSID`
/// (a forced detach, after a safe offline failed; queued requests are failed, so
/// unwritten data may be lost). The kernel still refuses a device that is open.
/// Guard: the uid is still `expected_uid`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DasdOffline {
    pub busid: CcwBusId,
    pub expected_uid: DasdUid,
}

impl TypedOp for DasdOffline {
    const NAME: &'static str = "dasd.offline";
}

impl DasdOffline {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(exec_plan(
            argv(&["chccwdev", "-d"], self.busid),
            Some(uid_guard(self.busid, self.expected_uid, None)),
        ))
    }
}

/// Low-level format an unformatted ECKD DASD: `dasdfmt -y -b 4096 -d cdl
/// /dev/dasdX` — without asking (`-y`), 4 KiB blocks, the compatible disk layout
/// (volume label and VTOC on the first tracks, what `fdasd` and other systems
/// expect), dasdfmt's default mode (`full`; `quick` on a thin-provisioned ESE
/// volume, whose tracks the kernel formats on first write), and never `-F`
/// (dasdfmt's own checks that the device is not in use stay on).
///
/// Guards: `device` is the disk of `busid`, the uid is `expected_uid`, and the
/// device's status is `unformatted` (`precondition_failed` otherwise: moord never
/// formats a formatted DASD).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DasdFormat {
    pub busid: CcwBusId,
    /// The device's block device, `dasdX`.
    pub device: String,
    pub expected_uid: DasdUid,
}

impl TypedOp for DasdFormat {
    const NAME: &'static str = "dasd.format";
}

impl DasdFormat {
    pub fn plan(self) -> Result<Plan, OpError> {
        check_device(Self::NAME, &self.device, DevKind::Dasd)?;
        let argv = vec![
            "dasdfmt".into(),
            "-y".into(),
            "-b".into(),
            DASD_BLOCK_SIZE.to_string(),
            "-d".into(),
            "cdl".into(),
            format!("/dev/{}", self.device),
        ];
        let guard = Guard::All(vec![
            uid_guard(self.busid, self.expected_uid, Some(self.device)),
            Guard::DasdStatus {
                busid: self.busid,
                status: "unformatted",
            },
        ]);
        Ok(exec_plan(argv, Some(guard)))
    }
}

/// Write a partition table with one partition spanning a freshly formatted
/// (compatible disk layout) DASD: `fdasd -a /dev/dasdX`.
///
/// Guards: `device` is the disk of `busid`, the uid is `expected_uid`, the status
/// is `online` (formatted) and the disk has no partition yet
/// (`precondition_failed` otherwise: moord never rewrites a partition table).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DasdPartition {
    pub busid: CcwBusId,
    /// The device's block device, `dasdX`.
    pub device: String,
    pub expected_uid: DasdUid,
}

impl TypedOp for DasdPartition {
    const NAME: &'static str = "dasd.partition";
}

impl DasdPartition {
    pub fn plan(self) -> Result<Plan, OpError> {
        check_device(Self::NAME, &self.device, DevKind::Dasd)?;
        let argv = vec!["fdasd".into(), "-a".into(), format!("/dev/{}", self.device)];
        let guard = Guard::All(vec![
            uid_guard(self.busid, self.expected_uid, Some(self.device.clone())),
            Guard::DasdStatus {
                busid: self.busid,
                status: "online",
            },
            Guard::Unpartitioned {
                device: self.device,
            },
        ]);
        Ok(exec_plan(argv, Some(guard)))
    }
}

/// Plans and logs show bus ids and uids as the kernel prints them (`0.0.b100`), not
/// as their parts.
macro_rules! debug_as_displayed {
    ($($t:ident { $($f:ident),* }),* $(,)?) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut d = f.debug_struct(stringify!($t));
                $(d.field(stringify!($f), &format_args!("{}", self.$f));)*
                d.finish()
            }
        }
    )*};
}

debug_as_displayed!(
    DasdFree { busid },
    DasdOnline { busid },
    DasdSafeOffline {
        busid,
        expected_uid
    },
    DasdOffline {
        busid,
        expected_uid
    },
    DasdFormat {
        busid,
        device,
        expected_uid
    },
    DasdPartition {
        busid,
        device,
        expected_uid
    },
);

fn argv(head: &[&str], busid: CcwBusId) -> Vec<String> {
    head.iter()
        .map(|s| s.to_string())
        .chain(std::iter::once(busid.to_string()))
        .collect()
}

fn uid_guard(busid: CcwBusId, expected: DasdUid, device: Option<String>) -> Guard {
    Guard::DasdUid {
        busid,
        expected,
        device,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ExecPlan, plan};
    use super::*;

    const UID: &str = "IBM.750000000DXP71.2300.05";

    fn exec(op: &str, args: &str) -> ExecPlan {
        match plan(op, args) {
            Ok(Plan::Exec(e)) => {
                assert!(e.stdin.is_none() && e.secret_stdin.is_none() && !e.stream);
                e
            }
            other => panic!("{op}: {other:?}"),
        }
    }

    fn busid(s: &str) -> CcwBusId {
        s.parse().unwrap()
    }

    #[test]
    fn visibility_and_online_argv() {
        let e = exec("dasd.free", r#"{"busid":"0.0.B100"}"#);
        assert_eq!(e.argv, ["cio_ignore", "-r", "0.0.b100"]);
        assert_eq!(e.guard, None);
        // A bare device number is the kernel's 0.0.<devno>.
        let e = exec("dasd.online", r#"{"busid":"b100"}"#);
        assert_eq!(e.argv, ["chccwdev", "-e", "0.0.b100"]);
        assert_eq!(
            e.guard,
            Some(Guard::CcwDriver {
                busid: busid("0.0.b100"),
                driver: "dasd-eckd"
            })
        );
        let e = exec("dasd.online", r#"{"busid":"0.1.0a"}"#);
        assert_eq!(e.argv, ["chccwdev", "-e", "0.1.000a"]);
    }

    #[test]
    fn offline_argv_carry_the_uid_guard() {
        let args = format!(r#"{{"busid":"0.0.b100","expected_uid":"{UID}"}}"#);
        for (op, flag) in [("dasd.safe_offline", "-s"), ("dasd.offline", "-d")] {
            let e = exec(op, &args);
            assert_eq!(e.argv, ["chccwdev", flag, "0.0.b100"], "{op}");
            assert_eq!(
                e.guard,
                Some(Guard::DasdUid {
                    busid: busid("0.0.b100"),
                    expected: UID.parse().unwrap(),
                    device: None,
                }),
                "{op}"
            );
        }
    }

    #[test]
    fn format_and_partition_are_guarded_by_uid_disk_and_state() {
        let args = format!(r#"{{"busid":"0.0.b100","device":"dasdb","expected_uid":"{UID}"}}"#);
        let e = exec("dasd.format", &args);
        assert_eq!(
            e.argv,
            ["dasdfmt", "-y", "-b", "4096", "-d", "cdl", "/dev/dasdb"]
        );
        let uid = Guard::DasdUid {
            busid: busid("0.0.b100"),
            expected: UID.parse().unwrap(),
            device: Some("dasdb".into()),
        };
        assert_eq!(
            e.guard,
            Some(Guard::All(vec![
                uid.clone(),
                Guard::DasdStatus {
                    busid: busid("0.0.b100"),
                    status: "unformatted"
                }
            ]))
        );
        let e = exec("dasd.partition", &args);
        assert_eq!(e.argv, ["fdasd", "-a", "/dev/dasdb"]);
        assert_eq!(
            e.guard,
            Some(Guard::All(vec![
                uid,
                Guard::DasdStatus {
                    busid: busid("0.0.b100"),
                    status: "online"
                },
                Guard::Unpartitioned {
                    device: "dasdb".into()
                }
            ]))
        );
    }

    #[test]
    fn debug_shows_bus_ids_as_the_kernel_prints_them() {
        let op = DasdFormat {
            busid: busid("0.0.B100"),
            device: "dasdb".into(),
            expected_uid: UID.parse().unwrap(),
        };
        assert_eq!(
            format!("{op:?}"),
            format!("DasdFormat {{ busid: 0.0.b100, device: dasdb, expected_uid: {UID} }}")
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        let good = format!(r#"{{"busid":"0.0.b100","device":"dasdb","expected_uid":"{UID}"}}"#);
        for op in ["dasd.format", "dasd.partition"] {
            for (from, to) in [
                ("0.0.b100", "0.0.b1000"),
                ("0.0.b100", "0.4.b100"),
                ("0.0.b100", "0.0.b100-0.0.b1ff"),
                ("0.0.b100", "all"),
                ("0.0.b100", "0.0.b100,0.0.b101"),
                ("0.0.b100", "../0.0.b100"),
                ("dasdb", "dasdb1"),
                ("dasdb", "sdb"),
                ("dasdb", "dasd"),
                ("dasdb", "/dev/dasdb"),
                ("dasdb", "dasdB"),
                (UID, "IBM.750000000DXP71.2300"),
                (UID, ""),
                (UID, "IBM.750000000DXP71.2300.05 -F"),
                ("\"device\"", "\"disk\""),
                ("\"expected_uid\"", r#""force":true,"expected_uid""#),
            ] {
                let args = good.replacen(from, to, 1);
                assert_ne!(args, good, "{from} not in template");
                assert!(plan(op, &args).is_err(), "{op} accepted {to}");
            }
        }
        for (op, args) in [
            ("dasd.free", r#"{}"#),
            ("dasd.free", r#"{"busid":"all"}"#),
            ("dasd.free", r#"{"busid":"0.0.b100","purge":true}"#),
            ("dasd.online", r#"{"busid":"0.0.b100","force":true}"#),
            ("dasd.online", r#"{"busid":""}"#),
            ("dasd.safe_offline", r#"{"busid":"0.0.b100"}"#),
            ("dasd.offline", r#"{"busid":"0.0.b100","expected_uid":""}"#),
        ] {
            assert!(plan(op, args).is_err(), "{op} {args}");
        }
    }
}
