//! `moor filters import`: what an existing rootwrap setup (cinder's or nova's
//! `rootwrap.conf` and its `.filters` files) allows, and how it maps onto moord's
//! policy: which typed-operation families replace which filters, which filters moor
//! does not need at all (it reads sysfs and udev's database instead), and which
//! have no typed operation (they would need `exec`, with their risk).

use serde::Serialize;

use moor_filters::audit::{self, Risk};
use moor_filters::{Class, Filter};

/// Where a rootwrap filter's job goes under moord.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mapping {
    /// Typed moord operations of this family do what the filter is for.
    Family { family: &'static str },
    /// moor does not run this at all (it reads sysfs, udev's database, its own
    /// records); `why` says what replaces it.
    NotNeeded { why: &'static str },
    /// No typed operation: only `exec` (with this filter in moord's filters) would
    /// run it.
    Exec,
}

/// The tools os-brick runs through rootwrap, and where moor does their job.
const TOOLS: &[(&str, Mapping)] = &[
    ("iscsiadm", Mapping::Family { family: "iscsi.*" }),
    (
        "multipath",
        Mapping::Family {
            family: "multipath.*",
        },
    ),
    (
        "multipathd",
        Mapping::Family {
            family: "multipath.*",
        },
    ),
    ("cryptsetup", Mapping::Family { family: "luks.*" }),
    ("nvme", Mapping::Family { family: "nvme.*" }),
    ("mdadm", Mapping::Family { family: "md.*" }),
    ("blockdev", Mapping::Family { family: "block.*" }),
    ("cio_ignore", Mapping::Family { family: "dasd.*" }),
    ("chccwdev", Mapping::Family { family: "dasd.*" }),
    ("dasdfmt", Mapping::Family { family: "dasd.*" }),
    ("fdasd", Mapping::Family { family: "dasd.*" }),
    // os-brick's SCSI scans, deletes and zFCP unit writes are `tee -a` into sysfs.
    (
        "tee",
        Mapping::Family {
            family: "scsi.* / zfcp.* / nvme.*",
        },
    ),
    (
        "scsi_id",
        Mapping::NotNeeded {
            why: "moor reads the WWID from sysfs (device/wwid) and moord re-checks it",
        },
    ),
    (
        "sg_scan",
        Mapping::NotNeeded {
            why: "moor finds SCSI devices in sysfs",
        },
    ),
    (
        "lsscsi",
        Mapping::NotNeeded {
            why: "moor finds SCSI devices in sysfs",
        },
    ),
    (
        "systool",
        Mapping::NotNeeded {
            why: "moor reads /sys/class/fc_host and fc_remote_ports itself",
        },
    ),
    (
        "lsblk",
        Mapping::NotNeeded {
            why: "moor reads holders and sizes from sysfs",
        },
    ),
    (
        "blkid",
        Mapping::NotNeeded {
            why: "moor reads udev's database; moord's blank check reads headers itself",
        },
    ),
    (
        "udevadm",
        Mapping::NotNeeded {
            why: "moor follows udev events itself",
        },
    ),
];

/// Where filter `f`'s job goes.
pub fn mapping(f: &Filter) -> Mapping {
    match f.class {
        Class::ReadFileFilter => {
            return Mapping::Family {
                family: "file.read",
            };
        }
        Class::WriteFileFilter => {
            return Mapping::Family {
                family: "sysfs.write",
            };
        }
        _ => {}
    }
    let tool = f.exec_path.rsplit('/').next().unwrap_or(&f.exec_path);
    TOOLS
        .iter()
        .find(|(t, _)| *t == tool)
        .map(|(_, m)| *m)
        .unwrap_or(Mapping::Exec)
}

/// One filter of the imported set.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub name: String,
    /// `file:line`.
    pub at: String,
    pub command: String,
    pub mapping: Mapping,
    pub risk: Risk,
}

/// The whole import: every filter and the policy that replaces it.
#[derive(Debug, Clone, Serialize)]
pub struct Import {
    pub filters: Vec<Imported>,
    /// The typed families the set's covered filters need, sorted.
    pub families: Vec<&'static str>,
    /// Whether some filter has no typed operation (a policy would need `exec`).
    pub needs_exec: bool,
}

pub fn import(filters: &[Filter]) -> Import {
    let mut out = Vec::new();
    let mut families: Vec<&'static str> = Vec::new();
    for f in filters {
        let l = audit::describe(f);
        let m = mapping(f);
        if let Mapping::Family { family } = m {
            for fam in family.split(" / ") {
                if !families.contains(&fam) {
                    families.push(fam);
                }
            }
        }
        out.push(Imported {
            name: f.name.clone(),
            at: format!("{}:{}", l.file.display(), l.line),
            command: if f.exec_path.is_empty() {
                format!("{:?}", f.class)
            } else {
                f.exec_path.clone()
            },
            mapping: m,
            risk: l.risk,
        });
    }
    families.sort_unstable();
    let needs_exec = out.iter().any(|i| i.mapping == Mapping::Exec);
    Import {
        filters: out,
        families,
        needs_exec,
    }
}

/// The text report.
pub fn print(imp: &Import) {
    let group = |pred: &dyn Fn(&Mapping) -> bool| -> Vec<&Imported> {
        imp.filters.iter().filter(|i| pred(&i.mapping)).collect()
    };
    println!("Covered by moord's typed operations (grant the family; the filter is not needed):");
    for fam in &imp.families {
        let names: Vec<String> = imp
            .filters
            .iter()
            .filter(|i| matches!(i.mapping, Mapping::Family { family } if family.split(" / ").any(|f| f == *fam)))
            .map(|i| i.name.clone())
            .collect();
        println!("  {fam:<12} {}", names.join(", "));
    }
    let not_needed = group(&|m| matches!(m, Mapping::NotNeeded { .. }));
    if !not_needed.is_empty() {
        println!("Not needed by moor:");
        for i in not_needed {
            if let Mapping::NotNeeded { why } = i.mapping {
                println!("  {} ({}): {why}", i.name, i.command);
            }
        }
    }
    let exec = group(&|m| *m == Mapping::Exec);
    if !exec.is_empty() {
        println!(
            "No typed operation (only `exec` would run these; keep them out of moord unless a caller still needs them):"
        );
        for i in exec {
            println!("  {} ({}) at {}  risk: {}", i.name, i.command, i.at, i.risk);
        }
    }
    println!();
    println!("Suggested moord.toml policy for the service's group:");
    println!("[[policy]]");
    println!("group = \"<the service's group>\"");
    let ops: Vec<String> = imp.families.iter().map(|f| format!("\"{f}\"")).collect();
    println!("ops = [\"ping\", {}]", ops.join(", "));
    if imp.needs_exec {
        println!(
            "# plus \"exec\" only while a caller still runs the commands listed above without a typed operation"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Vec<Filter> {
        let (filters, diags) =
            moor_filters::parse_filters_text(text, std::path::Path::new("/etc/x/volume.filters"));
        assert!(diags.is_empty(), "{diags:?}");
        filters
    }

    #[test]
    fn maps_a_cinder_style_set() {
        let filters = load(
            "[Filters]\n\
             iscsiadm: CommandFilter, iscsiadm, root\n\
             multipathd: CommandFilter, multipathd, root\n\
             cryptsetup: CommandFilter, cryptsetup, root\n\
             tee: CommandFilter, tee, root\n\
             scsi_id: CommandFilter, /lib/udev/scsi_id, root\n\
             lvcreate: CommandFilter, lvcreate, root\n\
             dd: CommandFilter, dd, root\n\
             cat: ReadFileFilter, /etc/iscsi/initiatorname.iscsi\n",
        );
        let imp = import(&filters);
        assert_eq!(
            imp.families,
            [
                "file.read",
                "iscsi.*",
                "luks.*",
                "multipath.*",
                "nvme.*",
                "scsi.*",
                "zfcp.*"
            ]
        );
        assert!(imp.needs_exec);
        let by = |n: &str| imp.filters.iter().find(|i| i.name == n).unwrap().mapping;
        assert_eq!(by("lvcreate"), Mapping::Exec);
        assert_eq!(by("dd"), Mapping::Exec);
        assert!(matches!(by("scsi_id"), Mapping::NotNeeded { .. }));
        assert_eq!(by("iscsiadm"), Mapping::Family { family: "iscsi.*" });
        let json = serde_json::to_value(&imp).unwrap();
        assert_eq!(json["filters"][0]["mapping"]["kind"], "family");
    }
}
