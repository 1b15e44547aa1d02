//! MD RAID1 over NVMe-oF replicas (os-brick's replicated NVMe-oF volumes): create
//! a mirror from the replicas' namespaces, assemble an existing one, stop it, grow
//! it to its legs' size. Every argv is built here from validated values: the array
//! name ([`MdName`]), the legs (NVMe namespaces `nvmeXnY`, each with the WWID the
//! caller captured), the array's kernel name (`mdN`).
//!
//! Guards, checked right before mdadm runs:
//!
//! * `md.create`: every leg still carries its WWID **and** carries no recognisable
//!   header ([`Guard::Blank`]: an MD superblock, a file system, a partition table, …)
//!   — mdadm never writes a new superblock over a leg that holds something;
//! * `md.assemble`: every leg still carries its WWID;
//! * `md.stop`, `md.grow`: `mdN` is still the array `/dev/md/NAME` made of (some
//!   of) the legs ([`Guard::MdArray`]): md minors are reused like `sdX`.

use std::collections::BTreeSet;

use moor_types::MdName;
use serde::{Deserialize, Serialize};

use super::{DevKind, Guard, OpError, Plan, TypedOp, bad, check_device, check_wwid, exec_plan};

/// The most legs (replicas) an array may have: the shipped filters carry one line
/// per leg count up to this.
pub const MAX_LEGS: usize = 4;

/// One leg of an array: an NVMe namespace (`nvmeXnY`, never a hidden multipath path
/// `nvmeXcYnZ`) and the WWID the caller captured for it (its
/// `/sys/block/nvmeXnY/wwid` as printed: `uuid.…`, `eui.…`, `nvme.…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdLeg {
    pub device: String,
    pub expected_wwid: String,
}

impl MdLeg {
    fn dev_path(&self) -> String {
        format!("/dev/{}", self.device)
    }

    fn wwid_guard(&self) -> Guard {
        Guard::Wwid {
            device: self.device.clone(),
            expected: self.expected_wwid.clone(),
        }
    }
}

/// `legs` has `min..=MAX_LEGS` entries, each an NVMe namespace with a WWID, no
/// device and no WWID twice (one namespace cannot mirror itself).
fn check_legs(op: &'static str, legs: &[MdLeg], min: usize) -> Result<(), OpError> {
    if !(min..=MAX_LEGS).contains(&legs.len()) {
        return Err(bad(
            op,
            format!("{} legs given, {min} to {MAX_LEGS} expected", legs.len()),
        ));
    }
    let (mut devices, mut wwids) = (BTreeSet::new(), BTreeSet::new());
    for leg in legs {
        check_device(op, &leg.device, DevKind::Namespace)?;
        check_wwid(op, &leg.expected_wwid)?;
        if !devices.insert(leg.device.as_str()) {
            return Err(bad(op, format!("leg {} is given twice", leg.device)));
        }
        if !wwids.insert(leg.expected_wwid.as_str()) {
            return Err(bad(
                op,
                format!(
                    "two legs carry expected_wwid {:?}: one namespace cannot mirror itself",
                    leg.expected_wwid
                ),
            ));
        }
    }
    Ok(())
}

fn argv(parts: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    parts.into_iter().map(Into::into).collect()
}

/// The [`Guard::MdArray`] of `md.stop` / `md.grow`, after validating `device` and
/// `legs` (1..=MAX_LEGS: a degraded array has fewer slaves than legs).
fn md_array_guard(
    op: &'static str,
    device: &str,
    name: &MdName,
    legs: &[MdLeg],
) -> Result<Guard, OpError> {
    check_device(op, device, DevKind::Md)?;
    check_legs(op, legs, 1)?;
    Ok(Guard::MdArray {
        device: device.to_string(),
        name: name.to_string(),
        members: legs
            .iter()
            .map(|l| (l.device.clone(), l.expected_wwid.clone()))
            .collect(),
    })
}

/// Create a RAID1 array `/dev/md/NAME` from 2..=4 blank legs, os-brick's argv
/// with every setting explicit:
///
/// `mdadm --create /dev/md/NAME --run --name=NAME --level=1 --raid-devices=N
/// --bitmap=internal --homehost=any --failfast --assume-clean --metadata=1.2
/// /dev/LEG1 … /dev/LEGN`
///
/// Guard: for each leg in order, its WWID, then that it is blank (no MD
/// superblock, file system, partition table, LUKS or LVM header in its first MiB;
/// `precondition_failed` otherwise, and nothing runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdCreate {
    pub name: MdName,
    pub legs: Vec<MdLeg>,
}

impl TypedOp for MdCreate {
    const NAME: &'static str = "md.create";
}

impl MdCreate {
    pub fn plan(self) -> Result<Plan, OpError> {
        check_legs(Self::NAME, &self.legs, 2)?;
        let name = self.name.as_str();
        let mut a = argv([
            "mdadm".to_string(),
            "--create".into(),
            format!("/dev/md/{name}"),
            "--run".into(),
            format!("--name={name}"),
            "--level=1".into(),
            format!("--raid-devices={}", self.legs.len()),
            "--bitmap=internal".into(),
            "--homehost=any".into(),
            "--failfast".into(),
            "--assume-clean".into(),
            "--metadata=1.2".into(),
        ]);
        a.extend(self.legs.iter().map(MdLeg::dev_path));
        let guard = Guard::All(
            self.legs
                .iter()
                .flat_map(|l| [l.wwid_guard(), Guard::Blank { path: l.dev_path() }])
                .collect(),
        );
        Ok(exec_plan(a, Some(guard)))
    }
}

/// Assemble (and start, even degraded) the existing array `/dev/md/NAME` from 1..=4
/// legs: `mdadm --assemble --run /dev/md/NAME /dev/LEG…`. Guard: every leg's WWID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdAssemble {
    pub name: MdName,
    pub legs: Vec<MdLeg>,
}

impl TypedOp for MdAssemble {
    const NAME: &'static str = "md.assemble";
}

impl MdAssemble {
    pub fn plan(self) -> Result<Plan, OpError> {
        check_legs(Self::NAME, &self.legs, 1)?;
        let mut a = argv([
            "mdadm".to_string(),
            "--assemble".into(),
            "--run".into(),
            format!("/dev/md/{}", self.name),
        ]);
        a.extend(self.legs.iter().map(MdLeg::dev_path));
        let guard = Guard::All(self.legs.iter().map(MdLeg::wwid_guard).collect());
        Ok(exec_plan(a, Some(guard)))
    }
}

/// Stop array `device` (`mdN`): `mdadm --stop /dev/mdN`. Guard: [`Guard::MdArray`]
/// (`mdN` is `/dev/md/NAME`, its slaves are among `legs` and carry their WWIDs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdStop {
    pub device: String,
    pub name: MdName,
    pub legs: Vec<MdLeg>,
}

impl TypedOp for MdStop {
    const NAME: &'static str = "md.stop";
}

impl MdStop {
    pub fn plan(self) -> Result<Plan, OpError> {
        let guard = md_array_guard(Self::NAME, &self.device, &self.name, &self.legs)?;
        let a = argv([
            "mdadm".to_string(),
            "--stop".into(),
            format!("/dev/{}", self.device),
        ]);
        Ok(exec_plan(a, Some(guard)))
    }
}

/// Grow array `device` (`mdN`) to the size of its (extended) legs: `mdadm --grow
/// /dev/mdN --size=max`. Guard: as [`MdStop`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdGrow {
    pub device: String,
    pub name: MdName,
    pub legs: Vec<MdLeg>,
}

impl TypedOp for MdGrow {
    const NAME: &'static str = "md.grow";
}

impl MdGrow {
    pub fn plan(self) -> Result<Plan, OpError> {
        let guard = md_array_guard(Self::NAME, &self.device, &self.name, &self.legs)?;
        let a = argv([
            "mdadm".to_string(),
            "--grow".into(),
            format!("/dev/{}", self.device),
            "--size=max".into(),
        ]);
        Ok(exec_plan(a, Some(guard)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan;
    use super::*;
    use serde_json::{Value, json};

    const W: [&str; 5] = [
        "uuid.c20aba21-6ef6-446b-b374-45733b4883ba",
        "uuid.5b3e2d1c-0f9a-4e8b-8c7d-6a5b4c3d2e1f",
        "eui.0123456789abcdef",
        "nvme.1b4b-3132-4d44-0001",
        "uuid.00000000-0000-4000-8000-000000000005",
    ];

    fn legs(n: usize) -> Value {
        Value::Array(
            (0..n)
                .map(|i| json!({"device": format!("nvme{i}n1"), "expected_wwid": W[i]}))
                .collect(),
        )
    }

    fn exec(op: &str, args: &Value) -> (Vec<String>, Guard) {
        match plan(op, &args.to_string()) {
            Ok(Plan::Exec(e)) => {
                assert!(e.stdin.is_none() && e.secret_stdin.is_none() && !e.stream);
                (e.argv, e.guard.expect("a guard"))
            }
            other => panic!("{op} {args}: {other:?}"),
        }
    }

    fn wwid(device: &str, w: &str) -> Guard {
        Guard::Wwid {
            device: device.into(),
            expected: w.into(),
        }
    }

    fn refused(op: &str, args: &Value) -> String {
        match plan(op, &args.to_string()) {
            Err(OpError::BadArgs { message, .. }) => message,
            other => panic!("{op} {args} was planned: {other:?}"),
        }
    }

    #[test]
    fn create_argv_and_guard() {
        for n in 2..=4 {
            let (argv, guard) = exec("md.create", &json!({"name": "vol-1", "legs": legs(n)}));
            let mut want: Vec<String> = [
                "mdadm",
                "--create",
                "/dev/md/vol-1",
                "--run",
                "--name=vol-1",
                "--level=1",
                &format!("--raid-devices={n}"),
                "--bitmap=internal",
                "--homehost=any",
                "--failfast",
                "--assume-clean",
                "--metadata=1.2",
            ]
            .map(String::from)
            .to_vec();
            want.extend((0..n).map(|i| format!("/dev/nvme{i}n1")));
            assert_eq!(argv, want);
            let mut g = Vec::new();
            for (i, w) in W.iter().enumerate().take(n) {
                g.push(wwid(&format!("nvme{i}n1"), w));
                g.push(Guard::Blank {
                    path: format!("/dev/nvme{i}n1"),
                });
            }
            assert_eq!(guard, Guard::All(g));
        }
    }

    #[test]
    fn assemble_argv_and_guard() {
        for n in 1..=4 {
            let (argv, guard) = exec("md.assemble", &json!({"name": "md_a.b", "legs": legs(n)}));
            let mut want = vec![
                "mdadm".to_string(),
                "--assemble".into(),
                "--run".into(),
                "/dev/md/md_a.b".into(),
            ];
            want.extend((0..n).map(|i| format!("/dev/nvme{i}n1")));
            assert_eq!(argv, want);
            assert_eq!(
                guard,
                Guard::All((0..n).map(|i| wwid(&format!("nvme{i}n1"), W[i])).collect())
            );
        }
    }

    #[test]
    fn stop_and_grow_argv_and_guard() {
        for n in 1..=4 {
            let args = json!({"device": "md127", "name": "vol-1", "legs": legs(n)});
            let members: Vec<(String, String)> = (0..n)
                .map(|i| (format!("nvme{i}n1"), W[i].to_string()))
                .collect();
            let want_guard = Guard::MdArray {
                device: "md127".into(),
                name: "vol-1".into(),
                members,
            };
            let (argv, guard) = exec("md.stop", &args);
            assert_eq!(argv, ["mdadm", "--stop", "/dev/md127"]);
            assert_eq!(guard, want_guard);
            let (argv, guard) = exec("md.grow", &args);
            assert_eq!(argv, ["mdadm", "--grow", "/dev/md127", "--size=max"]);
            assert_eq!(guard, want_guard);
        }
    }

    #[test]
    fn leg_counts_are_bounded() {
        let m = refused("md.create", &json!({"name": "v", "legs": legs(1)}));
        assert!(m.contains("1 legs given, 2 to 4 expected"), "{m}");
        for op in ["md.create", "md.assemble"] {
            for n in [0, 5] {
                refused(op, &json!({"name": "v", "legs": legs(n)}));
            }
        }
        for op in ["md.stop", "md.grow"] {
            for n in [0, 5] {
                refused(op, &json!({"device": "md0", "name": "v", "legs": legs(n)}));
            }
        }
    }

    #[test]
    fn legs_are_distinct_nvme_namespaces_with_wwids() {
        let with_leg = |i: usize, leg: Value| {
            let mut l = legs(2);
            l[i] = leg;
            l
        };
        let dup_dev = with_leg(1, json!({"device": "nvme0n1", "expected_wwid": W[1]}));
        let dup_wwid = with_leg(1, json!({"device": "nvme1n1", "expected_wwid": W[0]}));
        let mut bad_legs = vec![(dup_dev, "given twice"), (dup_wwid, "mirror itself")];
        for dev in [
            "nvme0c1n1",
            "nvme0",
            "nvme0n1p1",
            "sda",
            "dm-0",
            "md0",
            "/dev/nvme0n1",
            "../nvme0n1",
            "nvme0n1 ",
            "",
        ] {
            bad_legs.push((
                with_leg(1, json!({"device": dev, "expected_wwid": W[1]})),
                "not an NVMe namespace",
            ));
        }
        for w in ["", "uuid.a b", "uuid/x", "uuid.x\n"] {
            bad_legs.push((
                with_leg(0, json!({"device": "nvme0n1", "expected_wwid": w})),
                "is not a WWID",
            ));
        }
        bad_legs.push((with_leg(0, json!({"device": "nvme0n1"})), "expected_wwid"));
        bad_legs.push((
            with_leg(
                0,
                json!({"device": "nvme0n1", "expected_wwid": W[0], "x": 1}),
            ),
            "unknown field",
        ));
        bad_legs.push((with_leg(0, json!("nvme0n1")), "invalid type"));
        for (l, why) in bad_legs {
            for (op, args) in [
                ("md.create", json!({"name": "v", "legs": l})),
                ("md.assemble", json!({"name": "v", "legs": l})),
                ("md.stop", json!({"device": "md1", "name": "v", "legs": l})),
                ("md.grow", json!({"device": "md1", "name": "v", "legs": l})),
            ] {
                let m = refused(op, &args);
                assert!(m.contains(why), "{op} {args}: {m}");
            }
        }
    }

    #[test]
    fn names_and_arrays_are_validated() {
        for name in [
            json!(""),
            json!("a/b"),
            json!("../x"),
            json!(".."),
            json!("-a"),
            json!(".a"),
            json!("a b"),
            json!("x".repeat(33)),
            json!(1),
            json!(null),
        ] {
            refused("md.create", &json!({"name": name, "legs": legs(2)}));
            refused("md.assemble", &json!({"name": name, "legs": legs(2)}));
            refused(
                "md.stop",
                &json!({"device": "md0", "name": name, "legs": legs(2)}),
            );
        }
        // The longest name is fine.
        let long = "x".repeat(32);
        let (argv, _) = exec("md.create", &json!({"name": long, "legs": legs(2)}));
        assert_eq!(argv[2], format!("/dev/md/{long}"));
        for device in [
            "sda", "md", "md1p1", "md_d0", "/dev/md0", "md/vol", "md0 ", "dm-1", "nvme0n1",
        ] {
            let m = refused(
                "md.stop",
                &json!({"device": device, "name": "v", "legs": legs(2)}),
            );
            assert!(m.contains("not an MD array"), "{device}: {m}");
            refused(
                "md.grow",
                &json!({"device": device, "name": "v", "legs": legs(2)}),
            );
        }
        // Fields: exactly the documented ones.
        refused("md.stop", &json!({"name": "v", "legs": legs(2)}));
        refused(
            "md.create",
            &json!({"name": "v", "legs": legs(2), "level": 0}),
        );
        refused(
            "md.create",
            &json!({"device": "md0", "name": "v", "legs": legs(2)}),
        );
        refused("md.assemble", &json!({"name": "v"}));
    }

    #[test]
    fn wire_shapes() {
        let op = MdStop {
            device: "md127".into(),
            name: "vol-1".parse().unwrap(),
            legs: vec![MdLeg {
                device: "nvme0n1".into(),
                expected_wwid: W[0].into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&op).unwrap(),
            json!({"device": "md127", "name": "vol-1",
                   "legs": [{"device": "nvme0n1", "expected_wwid": W[0]}]})
        );
        let op = MdCreate {
            name: "vol-1".parse().unwrap(),
            legs: vec![],
        };
        assert_eq!(
            serde_json::to_value(&op).unwrap(),
            json!({"name": "vol-1", "legs": []})
        );
    }
}
