//! NVMe-oF operations: connect to a subsystem port, rescan or delete a controller,
//! set a controller's fast-fail timeout, and the host identity files
//! (`/etc/nvme/hostnqn`, `/etc/nvme/hostid`). Every argv and path is built here
//! from validated values ([`Nqn`], [`NvmeUuid`], [`NvmeController`]).
//!
//! Only `nvme.connect` runs a tool (nvme-cli: the kernel hands the new controller's
//! name back on `/dev/nvme-fabrics`, which a file write cannot read). The controller
//! operations write the attributes nvme-cli itself would write (`nvme.disconnect`
//! after moord has re-checked the controller's identity); `nvme.host_identity`
//! creates a missing identity file and never replaces one.

use std::net::IpAddr;

use moor_types::{Nqn, NvmeController, NvmeTransport, NvmeUuid};
use serde::{Deserialize, Serialize};

use super::{Guard, OpError, Plan, TypedOp, bad, exec_plan};

/// The discovery subsystem: a discovery controller lists subsystems, it carries
/// no namespace, so moord never connects to it as a volume.
const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";

/// The kernel parses the timeouts with `match_int`.
const MAX_SECONDS: i64 = i32::MAX as i64;

/// `nvme connect -t T -a ADDR -s PORT -n NQN -q HOSTNQN -I HOSTID -l LOSS -c DELAY
/// [-i QUEUES]` (nvme-cli ≥ 1.x option names; 2.3 is Debian 12's). The host NQN and
/// host id are always explicit, so the connection never depends on whatever
/// `/etc/nvme` holds at that moment.
///
/// `fast_io_fail_tmo` is not here: nvme-cli 2.3's `connect` has no such option;
/// see [`NvmeFastIoFail`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvmeConnect {
    pub transport: NvmeTransport,
    pub traddr: IpAddr,
    pub trsvcid: u16,
    /// The subsystem.
    pub nqn: Nqn,
    pub hostnqn: Nqn,
    pub hostid: NvmeUuid,
    /// Seconds of reconnect attempts before the kernel gives the controller up;
    /// `-1` = forever.
    pub ctrl_loss_tmo: i64,
    /// Seconds between reconnect attempts.
    pub reconnect_delay: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nr_io_queues: Option<u32>,
}

impl TypedOp for NvmeConnect {
    const NAME: &'static str = "nvme.connect";
}

impl NvmeConnect {
    pub fn plan(self) -> Result<Plan, OpError> {
        if self.nqn.as_str() == DISCOVERY_NQN {
            return Err(bad(
                Self::NAME,
                "nqn is the discovery subsystem, which has no volumes",
            ));
        }
        if self.hostnqn.as_str() == DISCOVERY_NQN {
            return Err(bad(
                Self::NAME,
                "hostnqn is the discovery NQN, not a host's",
            ));
        }
        if self.trsvcid == 0 {
            return Err(bad(Self::NAME, "trsvcid must be 1..=65535"));
        }
        if !(self.ctrl_loss_tmo == -1 || (0..=MAX_SECONDS).contains(&self.ctrl_loss_tmo)) {
            return Err(bad(
                Self::NAME,
                format!(
                    "ctrl_loss_tmo {} is not -1 or 0..={MAX_SECONDS}",
                    self.ctrl_loss_tmo
                ),
            ));
        }
        if self.reconnect_delay == 0 || i64::from(self.reconnect_delay) > MAX_SECONDS {
            return Err(bad(Self::NAME, "reconnect_delay must be at least 1 second"));
        }
        if let Some(q) = self.nr_io_queues
            && !(1..=4096).contains(&q)
        {
            return Err(bad(Self::NAME, "nr_io_queues must be 1..=4096"));
        }
        let mut argv: Vec<String> = [
            "nvme",
            "connect",
            "-t",
            self.transport.as_str(),
            "-a",
            &self.traddr.to_string(),
            "-s",
            &self.trsvcid.to_string(),
            "-n",
            self.nqn.as_str(),
            "-q",
            self.hostnqn.as_str(),
            "-I",
            &self.hostid.to_string(),
            "-l",
            &self.ctrl_loss_tmo.to_string(),
            "-c",
            &self.reconnect_delay.to_string(),
        ]
        .into_iter()
        .map(String::from)
        .collect();
        if let Some(q) = self.nr_io_queues {
            argv.extend(["-i".to_string(), q.to_string()]);
        }
        Ok(exec_plan(argv, None))
    }
}

/// Delete (disconnect) controller `controller`: `1` into
/// `/sys/class/nvme/nvmeN/delete_controller`, what `nvme disconnect -d` writes.
///
/// The `expected_*` fields are the controller's identity as the caller read it
/// (`subsysnqn`, `transport`, `address`, `hostnqn`). Controller names are reused,
/// so the plan carries a [`Guard::NvmeController`]: right before the write moord
/// re-reads those attributes and refuses with `identity_mismatch` (nothing written)
/// when the controller is gone or any of them differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvmeDisconnect {
    pub controller: NvmeController,
    pub expected_subsysnqn: Nqn,
    pub expected_transport: NvmeTransport,
    pub expected_traddr: IpAddr,
    pub expected_trsvcid: u16,
    pub expected_hostnqn: Nqn,
}

impl TypedOp for NvmeDisconnect {
    const NAME: &'static str = "nvme.disconnect";
}

impl NvmeDisconnect {
    pub fn plan(self) -> Result<Plan, OpError> {
        if self.expected_trsvcid == 0 {
            return Err(bad(Self::NAME, "expected_trsvcid must be 1..=65535"));
        }
        let guard = Guard::NvmeController {
            controller: self.controller,
            subsysnqn: self.expected_subsysnqn,
            transport: self.expected_transport,
            traddr: self.expected_traddr,
            trsvcid: self.expected_trsvcid,
            hostnqn: self.expected_hostnqn,
        };
        Ok(Plan::WriteFile {
            path: ctrl_path(self.controller, "delete_controller"),
            value: "1".into(),
            guard: Some(guard),
        })
    }
}

/// Ask controller `controller` to rescan its namespaces: `1` into
/// `/sys/class/nvme/nvmeN/rescan_controller` (`nvme ns-rescan`). A live controller
/// is reused for a new volume this way: the target may not send an AEN for a
/// namespace it just added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvmeNsRescan {
    pub controller: NvmeController,
}

impl TypedOp for NvmeNsRescan {
    const NAME: &'static str = "nvme.ns_rescan";
}

impl NvmeNsRescan {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(ctrl_write(self.controller, "rescan_controller", "1"))
    }
}

/// Set a controller's `fast_io_fail_tmo` (seconds; `-1` = off) through
/// `/sys/class/nvme/nvmeN/fast_io_fail_tmo`, right after `nvme.connect`: nvme-cli
/// 2.3 cannot pass it at connect time, the kernel (≥ 5.10) takes it at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvmeFastIoFail {
    pub controller: NvmeController,
    pub fast_io_fail_tmo: i64,
}

impl TypedOp for NvmeFastIoFail {
    const NAME: &'static str = "nvme.fast_io_fail";
}

impl NvmeFastIoFail {
    pub fn plan(self) -> Result<Plan, OpError> {
        let t = self.fast_io_fail_tmo;
        if !(t == -1 || (0..=MAX_SECONDS).contains(&t)) {
            return Err(bad(
                Self::NAME,
                format!("fast_io_fail_tmo {t} is not -1 or 0..={MAX_SECONDS}"),
            ));
        }
        Ok(ctrl_write(
            self.controller,
            "fast_io_fail_tmo",
            &t.to_string(),
        ))
    }
}

fn ctrl_path(c: NvmeController, attr: &str) -> String {
    format!("/sys/class/nvme/{c}/{attr}")
}

fn ctrl_write(c: NvmeController, attr: &str, value: &str) -> Plan {
    Plan::WriteFile {
        path: ctrl_path(c, attr),
        value: value.to_string(),
        guard: None,
    }
}

/// Path of the host NQN file.
pub const HOSTNQN_PATH: &str = "/etc/nvme/hostnqn";
/// Path of the host id file.
pub const HOSTID_PATH: &str = "/etc/nvme/hostid";
/// The system UUID (SMBIOS); readable by root only.
pub const PRODUCT_UUID_PATH: &str = "/sys/class/dmi/id/product_uuid";

/// Write one of the host's NVMe identity files, which the connector decided to
/// create because it is missing: `{"hostnqn": NQN}` → `/etc/nvme/hostnqn`,
/// `{"hostid": UUID}` → `/etc/nvme/hostid` (no trailing newline, as os-brick).
///
/// The identity of a host must never change under existing connections, so the
/// plan is a [`Plan::CreateFile`]: moord creates the file exclusively
/// (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0644, in a 0755 `/etc/nvme` it creates if
/// missing) and refuses with `precondition_failed` when it exists, never replacing
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum NvmeHostIdentity {
    Hostnqn(Nqn),
    Hostid(NvmeUuid),
}

impl TypedOp for NvmeHostIdentity {
    const NAME: &'static str = "nvme.host_identity";
}

impl NvmeHostIdentity {
    pub fn plan(self) -> Result<Plan, OpError> {
        let (path, value) = match self {
            NvmeHostIdentity::Hostnqn(n) if n.as_str() == DISCOVERY_NQN => {
                return Err(bad(
                    Self::NAME,
                    "hostnqn is the discovery NQN, not a host's",
                ));
            }
            NvmeHostIdentity::Hostnqn(n) => (HOSTNQN_PATH, n.to_string()),
            NvmeHostIdentity::Hostid(u) => (HOSTID_PATH, u.to_string()),
        };
        Ok(Plan::CreateFile {
            path: path.into(),
            value,
        })
    }
}

/// Read the system UUID (`/sys/class/dmi/id/product_uuid`, mode 0400), from which
/// a missing host NQN and host id are derived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvmeSystemUuid {}

impl TypedOp for NvmeSystemUuid {
    const NAME: &'static str = "nvme.system_uuid";
}

impl NvmeSystemUuid {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(Plan::ReadFile {
            path: PRODUCT_UUID_PATH.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NQN: &str = "nqn.2016-06.io.spdk:cnode1";
    const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:9126e942-396d-11e7-b0b7-a81e84c186d1";
    const HOSTID: &str = "9126e942-396d-11e7-b0b7-a81e84c186d1";

    use super::super::plan;

    fn connect_json(extra: &str) -> String {
        format!(
            r#"{{"transport":"tcp","traddr":"10.0.0.1","trsvcid":4420,"nqn":"{NQN}",
                "hostnqn":"{HOSTNQN}","hostid":"{HOSTID}","ctrl_loss_tmo":-1,
                "reconnect_delay":10{extra}}}"#
        )
    }

    fn argv(op: &str, args: &str) -> Vec<String> {
        match plan(op, args) {
            Ok(Plan::Exec(e)) => {
                assert!(e.guard.is_none() && e.stdin.is_none() && !e.stream);
                e.argv
            }
            other => panic!("{op}: {other:?}"),
        }
    }

    fn write(op: &str, args: &str) -> (String, String) {
        match plan(op, args) {
            Ok(Plan::WriteFile { path, value, guard }) => {
                assert_eq!(guard, None);
                (path, value)
            }
            other => panic!("{op}: {other:?}"),
        }
    }

    fn create(args: &str) -> (String, String) {
        match plan("nvme.host_identity", args) {
            Ok(Plan::CreateFile { path, value }) => (path, value),
            other => panic!("nvme.host_identity: {other:?}"),
        }
    }

    #[test]
    fn connect_argv() {
        assert_eq!(
            argv("nvme.connect", &connect_json("")),
            [
                "nvme", "connect", "-t", "tcp", "-a", "10.0.0.1", "-s", "4420", "-n", NQN, "-q",
                HOSTNQN, "-I", HOSTID, "-l", "-1", "-c", "10"
            ]
        );
        // Upper-case host id normalised; IPv6 compressed; rdma; a queue count.
        let args = connect_json(r#","nr_io_queues":4"#)
            .replace(
                &format!(r#""hostid":"{HOSTID}""#),
                r#""hostid":"9126E942396D11E7B0B7A81E84C186D1""#,
            )
            .replace(r#""10.0.0.1""#, r#""fd00:0::1""#)
            .replace(r#""tcp""#, r#""rdma""#)
            .replace("-1,", "600,");
        assert_eq!(
            argv("nvme.connect", &args),
            [
                "nvme", "connect", "-t", "rdma", "-a", "fd00::1", "-s", "4420", "-n", NQN, "-q",
                HOSTNQN, "-I", HOSTID, "-l", "600", "-c", "10", "-i", "4"
            ]
        );
    }

    #[test]
    fn connect_refuses_bad_arguments() {
        let good = connect_json("");
        for (from, to) in [
            (r#""tcp""#, r#""TCP""#),
            (r#""tcp""#, r#""fc""#),
            (r#""10.0.0.1""#, r#""array.example.com""#),
            (r#""10.0.0.1""#, r#""10.0.0.1 -d""#),
            ("4420", "0"),
            ("4420", "65536"),
            (NQN, "nqn.2016-06.io.spdk:a b"),
            (NQN, "nqn.2016-06.io.spdk:a,hostnqn=x"),
            (NQN, DISCOVERY_NQN),
            (HOSTNQN, DISCOVERY_NQN),
            (HOSTNQN, "host-1"),
            (HOSTID, "not-a-uuid"),
            ("-1,", "-2,"),
            ("-1,", "2147483648,"),
            (r#""reconnect_delay":10"#, r#""reconnect_delay":0"#),
            (
                r#""reconnect_delay":10"#,
                r#""reconnect_delay":10,"nr_io_queues":0"#,
            ),
            (
                r#""reconnect_delay":10"#,
                r#""reconnect_delay":10,"fast_io_fail_tmo":5"#,
            ),
            (
                r#""reconnect_delay":10"#,
                r#""reconnect_delay":10,"duplicate":true"#,
            ),
        ] {
            let args = good.replacen(from, to, 1);
            assert_ne!(args, good, "{from} not in template");
            assert!(plan("nvme.connect", &args).is_err(), "accepted {to}");
        }
    }

    #[test]
    fn controller_writes() {
        assert_eq!(
            write("nvme.ns_rescan", r#"{"controller":"nvme3"}"#),
            ("/sys/class/nvme/nvme3/rescan_controller".into(), "1".into())
        );
        let disconnect = format!(
            r#"{{"controller":"nvme12","expected_subsysnqn":"{NQN}","expected_transport":"rdma",
                "expected_traddr":"fd00:0::1","expected_trsvcid":4420,"expected_hostnqn":"{HOSTNQN}"}}"#
        );
        let Ok(Plan::WriteFile { path, value, guard }) = plan("nvme.disconnect", &disconnect)
        else {
            panic!("nvme.disconnect plan")
        };
        assert_eq!(
            (path.as_str(), value.as_str()),
            ("/sys/class/nvme/nvme12/delete_controller", "1")
        );
        assert_eq!(
            guard,
            Some(Guard::NvmeController {
                controller: "nvme12".parse().unwrap(),
                subsysnqn: NQN.parse().unwrap(),
                transport: NvmeTransport::Rdma,
                traddr: "fd00::1".parse().unwrap(),
                trsvcid: 4420,
                hostnqn: HOSTNQN.parse().unwrap(),
            })
        );
        assert!(plan("nvme.disconnect", r#"{"controller":"nvme12"}"#).is_err());
        for (from, to) in [
            ("4420", "0"),
            (r#""rdma""#, r#""fc""#),
            (r#""fd00:0::1""#, r#""array.example.com""#),
            (NQN, "nqn.2016-06.io.spdk:a,b"),
            (r#""nvme12""#, r#""nvme12n1""#),
            (HOSTNQN, ""),
        ] {
            let args = disconnect.replacen(from, to, 1);
            assert_ne!(args, disconnect, "{from} not in template");
            assert!(plan("nvme.disconnect", &args).is_err(), "accepted {to}");
        }
        assert_eq!(
            write(
                "nvme.fast_io_fail",
                r#"{"controller":"nvme0","fast_io_fail_tmo":5}"#
            ),
            ("/sys/class/nvme/nvme0/fast_io_fail_tmo".into(), "5".into())
        );
        assert_eq!(
            write(
                "nvme.fast_io_fail",
                r#"{"controller":"nvme0","fast_io_fail_tmo":-1}"#
            )
            .1,
            "-1"
        );
        for bad in [
            r#"{"controller":"nvme0","fast_io_fail_tmo":-2}"#,
            r#"{"controller":"nvme0n1","fast_io_fail_tmo":5}"#,
        ] {
            assert!(plan("nvme.fast_io_fail", bad).is_err(), "{bad}");
        }
        for bad in [
            r#"{"controller":"nvme0n1"}"#,
            r#"{"controller":"../nvme0"}"#,
            r#"{"controller":"nvme01"}"#,
            r#"{"controller":"/dev/nvme0"}"#,
            r#"{"controller":0}"#,
            r#"{}"#,
        ] {
            assert!(plan("nvme.ns_rescan", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_identity_files() {
        // Created, never overwritten; the value without a newline.
        assert_eq!(
            create(&format!(r#"{{"hostnqn":"{HOSTNQN}"}}"#)),
            (HOSTNQN_PATH.into(), HOSTNQN.into())
        );
        assert_eq!(
            create(r#"{"hostid":"9126E942-396D-11E7-B0B7-A81E84C186D1"}"#),
            (HOSTID_PATH.into(), HOSTID.into())
        );
        for bad in [
            r#"{}"#,
            r#"{"hostnqn":"host-1"}"#,
            r#"{"hostnqn":"nqn.2014-08.org.nvmexpress.discovery"}"#,
            r#"{"hostnqn":"nqn.2016-06.io.spdk:a,b"}"#,
            r#"{"hostnqn":"nqn.2016-06.io.spdk:a","hostid":"9126e942-396d-11e7-b0b7-a81e84c186d1"}"#,
            r#"{"hostid":"00000000-0000-0000-0000-000000000000"}"#,
            r#"{"hostname":"x"}"#,
            r#"{"hostnqn":"nqn.2014-08.org.nvmexpress:uuid:9126e942-396d-11e7-b0b7-a81e84c186d1\n"}"#,
        ] {
            assert!(plan("nvme.host_identity", bad).is_err(), "{bad}");
        }
        let op = NvmeHostIdentity::Hostid(HOSTID.parse().unwrap());
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            format!(r#"{{"hostid":"{HOSTID}"}}"#)
        );
        match plan("nvme.system_uuid", "null") {
            Ok(Plan::ReadFile { path }) => assert_eq!(path, PRODUCT_UUID_PATH),
            other => panic!("{other:?}"),
        }
    }
}
