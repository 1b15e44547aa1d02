//! dm-multipath operations. Paths are named by their SCSI disk and maps by both
//! their `dm-N` node and their name; moord checks the identity of each before it
//! runs the command.

use serde::{Deserialize, Serialize};

use super::{DevKind, Guard, OpError, Plan, TypedOp, bad, check_device, check_wwid, exec_plan};

fn exec(argv: &[&str], guard: Option<Guard>) -> Plan {
    exec_plan(argv.iter().map(|s| s.to_string()).collect(), guard)
}

fn check_map(op: &'static str, m: &str) -> Result<(), OpError> {
    let ok = !m.is_empty()
        && m.len() <= 128
        && !m.starts_with(['-', '.'])
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            op,
            format!("map name {m:?} is not 1-128 of A-Z a-z 0-9 . _ : -"),
        ))
    }
}

/// A path (SCSI disk) and the WWID it must carry.
macro_rules! path_op {
    ($(#[$m:meta])* $t:ident, $name:literal, [$($arg:literal),*]) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $t {
            pub device: String,
            pub expected_wwid: String,
        }

        impl TypedOp for $t {
            const NAME: &'static str = $name;
        }

        impl $t {
            pub fn plan(self) -> Result<Plan, OpError> {
                check_device(Self::NAME, &self.device, DevKind::Disk)?;
                check_wwid(Self::NAME, &self.expected_wwid)?;
                let dev = format!("/dev/{}", self.device);
                let mut argv: Vec<&str> = vec![$($arg),*];
                argv.push(&dev);
                Ok(exec(&argv, Some(Guard::Wwid {
                    device: self.device.clone(),
                    expected: self.expected_wwid.clone(),
                })))
            }
        }
    };
}

path_op!(
    /// `multipath -a /dev/sdX`: whitelist the disk's WWID (wwids file), so a map is
    /// created even for one path under `find_multipaths yes`.
    MultipathAddWwid, "multipath.add_wwid", ["multipath", "-a"]
);
path_op!(
    /// `multipathd add path /dev/sdX`.
    MultipathAddPath, "multipath.add_path", ["multipathd", "add", "path"]
);
path_op!(
    /// `multipathd del path /dev/sdX`: stop monitoring a path being removed.
    MultipathDelPath, "multipath.del_path", ["multipathd", "del", "path"]
);

/// A map: its node, its name and the WWID it must carry.
macro_rules! map_op {
    ($(#[$m:meta])* $t:ident, $name:literal, [$($arg:literal),*]) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $t {
            pub device: String,
            pub map: String,
            pub expected_wwid: String,
        }

        impl TypedOp for $t {
            const NAME: &'static str = $name;
        }

        impl $t {
            pub fn plan(self) -> Result<Plan, OpError> {
                check_device(Self::NAME, &self.device, DevKind::Map)?;
                check_map(Self::NAME, &self.map)?;
                check_wwid(Self::NAME, &self.expected_wwid)?;
                let mut argv: Vec<&str> = vec![$($arg),*];
                argv.push(&self.map);
                Ok(exec(&argv, Some(Guard::DmMap {
                    device: self.device.clone(),
                    name: self.map.clone(),
                    expected: self.expected_wwid.clone(),
                })))
            }
        }
    };
}

map_op!(
    /// `multipath -f MAP`: flush (remove) an unused map.
    MultipathFlush, "multipath.flush", ["multipath", "-f"]
);
map_op!(
    /// `multipathd resize map MAP`: adopt the paths' new size.
    MultipathResize, "multipath.resize", ["multipathd", "resize", "map"]
);

/// `multipath -C dm-N`: exit 0 when the map has usable paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipathCheck {
    pub device: String,
    pub expected_wwid: String,
}

impl TypedOp for MultipathCheck {
    const NAME: &'static str = "multipath.check";
}

impl MultipathCheck {
    pub fn plan(self) -> Result<Plan, OpError> {
        check_device(Self::NAME, &self.device, DevKind::Map)?;
        check_wwid(Self::NAME, &self.expected_wwid)?;
        Ok(exec(
            &["multipath", "-C", &self.device],
            Some(Guard::Wwid {
                device: self.device.clone(),
                expected: self.expected_wwid.clone(),
            }),
        ))
    }
}

/// `multipathd show status`: exit 0 when multipathd runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipathdStatus {}

impl TypedOp for MultipathdStatus {
    const NAME: &'static str = "multipath.status";
}

impl MultipathdStatus {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(exec(&["multipathd", "show", "status"], None))
    }
}

/// `multipathd show paths raw format %d`: the path devices multipathd monitors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipathdPaths {}

impl TypedOp for MultipathdPaths {
    const NAME: &'static str = "multipath.paths";
}

impl MultipathdPaths {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(exec(
            &["multipathd", "show", "paths", "raw", "format", "%d"],
            None,
        ))
    }
}

/// multipath's wwids file; multipath-tools creates `/etc/multipath` root-only on
/// some distributions, so an unprivileged caller reads it through moord.
pub const WWIDS_PATH: &str = "/etc/multipath/wwids";

/// Read `/etc/multipath/wwids` (a fixed path: no arguments).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipathWwids {}

impl TypedOp for MultipathWwids {
    const NAME: &'static str = "multipath.wwids";
}

impl MultipathWwids {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(Plan::ReadFile {
            path: WWIDS_PATH.into(),
        })
    }
}

/// `multipath -w WWID`: forget a WWID in the wwids file (`/etc/multipath/wwids`),
/// for a volume that is gone from the host; `moor cleanup` removes the entries
/// detaches leave behind. moord first checks that no block device on the host
/// carries the WWID ([`Guard::WwidUnused`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipathForgetWwid {
    pub wwid: String,
}

impl TypedOp for MultipathForgetWwid {
    const NAME: &'static str = "multipath.forget_wwid";
}

impl MultipathForgetWwid {
    pub fn plan(self) -> Result<Plan, OpError> {
        // An argument of its own, never an option: starts with a letter or digit.
        let w = &self.wwid;
        let ok = !w.is_empty()
            && w.len() <= 128
            && w.as_bytes()[0].is_ascii_alphanumeric()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if !ok {
            return Err(bad(
                Self::NAME,
                format!(
                    "wwid {w:?} is not 1-128 of A-Z a-z 0-9 . _ : - starting with a letter or digit"
                ),
            ));
        }
        Ok(exec(
            &["multipath", "-w", w],
            Some(Guard::WwidUnused { wwid: w.clone() }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forget_wwid_is_guarded_and_never_an_option() {
        let w = "36001405abcdef0123456789abcdef012";
        let plan = MultipathForgetWwid { wwid: w.into() }.plan().unwrap();
        let Plan::Exec(p) = plan else {
            panic!("exec plan")
        };
        assert_eq!(p.argv, ["multipath", "-w", w]);
        assert_eq!(p.guard, Some(Guard::WwidUnused { wwid: w.into() }));
        for bad in ["", "-F", "-w", ".x", "a b", "a/b", "x\n", &"3".repeat(129)] {
            assert!(
                MultipathForgetWwid { wwid: bad.into() }.plan().is_err(),
                "{bad:?}"
            );
        }
    }
}
