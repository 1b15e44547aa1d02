//! Host conformance: the daemons, settings and identities moor's attaches rely on.

use std::path::Path;

use moor_types::{Iqn, Nqn};

use moor_privhelper::ops::IscsiInitiatorName;

use super::{Check, Status};
use crate::exec::Privileged;
use crate::host::HostPaths;

/// Unprivileged questions about installed programs.
pub trait Probe {
    /// The first line `program --version` prints (stdout or stderr), or `None`
    /// when the program is not installed or does not answer.
    fn version(&self, program: &str) -> Option<String>;
}

/// Every check, in a fixed order. `privileged` (moord) reads the root-only
/// initiator name file for an unprivileged caller.
pub fn run(
    paths: &HostPaths,
    probe: &dyn Probe,
    privileged: Option<&dyn Privileged>,
) -> Vec<Check> {
    let procs = processes(paths);
    vec![
        iscsid(probe, &procs),
        session_scan(paths),
        initiator_name(paths, privileged),
        multipathd(&procs, probe),
        find_multipaths(paths, probe),
        nvme_multipath(paths),
        host_nqn(paths),
        udev(paths, &procs),
    ]
}

/// A running process: pid, `comm`, and the `exe` link when readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
    pub exe: Option<String>,
}

/// Every process in `/proc` (those that exit while read are skipped).
pub fn processes(paths: &HostPaths) -> Vec<Process> {
    let proc_dir = paths.proc("");
    let mut out = Vec::new();
    for name in paths.list_dir(&proc_dir).ok().flatten().unwrap_or_default() {
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        let Some(comm) = paths
            .read_attr(&proc_dir.join(&name).join("comm"))
            .ok()
            .flatten()
        else {
            continue;
        };
        let exe = std::fs::read_link(proc_dir.join(&name).join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        out.push(Process {
            pid,
            comm: comm.trim().to_string(),
            exe,
        });
    }
    out
}

fn running<'p>(procs: &'p [Process], comm: &str) -> Option<&'p Process> {
    procs.iter().find(|p| p.comm == comm)
}

/// `iscsid version 2.1.8` → `2.1.8`.
fn version_number(line: &str) -> String {
    line.split_whitespace()
        .last()
        .unwrap_or(line)
        .trim()
        .to_string()
}

fn iscsid(probe: &dyn Probe, procs: &[Process]) -> Check {
    const NAME: &str = "iscsid";
    let adm = probe.version("iscsiadm").map(|v| version_number(&v));
    let daemon = probe.version("iscsid").map(|v| version_number(&v));
    let Some(adm) = adm else {
        return Check::new(
            NAME,
            Status::Skip,
            "open-iscsi is not installed (no iscsiadm)",
        )
        .hint("install open-iscsi to attach iSCSI volumes");
    };
    let Some(p) = running(procs, "iscsid") else {
        return Check::new(NAME, Status::Fail, format!("not running (iscsiadm {adm})")).hint(
            "start iscsid (systemctl enable --now iscsid.socket, or iscsid.service): every iSCSI login goes through it",
        );
    };
    // A package upgrade replaces the binary under a running daemon: the kernel
    // shows the old one's exe as deleted, and the daemon is the old version.
    if p.exe.as_deref().is_some_and(|e| e.ends_with(" (deleted)")) {
        return Check::new(
            NAME,
            Status::Fail,
            format!(
                "pid {} runs a binary replaced on disk since it started (installed: iscsid {}, iscsiadm {adm})",
                p.pid,
                daemon.as_deref().unwrap_or("?")
            ),
        )
        .hint("restart iscsid so that it matches iscsiadm");
    }
    match daemon {
        Some(d) if d == adm => Check::new(
            NAME,
            Status::Ok,
            format!("running (pid {}), version {d}, same as iscsiadm", p.pid),
        ),
        Some(d) => Check::new(
            NAME,
            Status::Fail,
            format!("running (pid {}) version {d}, but iscsiadm is {adm}", p.pid),
        )
        .hint("iscsiadm and iscsid must come from the same open-iscsi (their IPC changes between versions): reinstall open-iscsi and restart iscsid"),
        None => Check::new(
            NAME,
            Status::Warn,
            format!("running (pid {}), its version unknown (iscsid --version did not answer); iscsiadm {adm}", p.pid),
        ),
    }
}

/// `key = value` settings of an open-iscsi style file (last one wins).
fn conf_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
}

fn session_scan(paths: &HostPaths) -> Check {
    const NAME: &str = "node.session.scan";
    let file = paths.etc("iscsi/iscsid.conf");
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Check::new(NAME, Status::Skip, "no /etc/iscsi/iscsid.conf");
    };
    match conf_value(&text, "node.session.scan").as_deref() {
        Some("manual") => Check::new(
            NAME,
            Status::Ok,
            "manual in iscsid.conf: a login scans only the LUNs asked for",
        ),
        other => Check::new(
            NAME,
            Status::Warn,
            format!(
                "{} in iscsid.conf: moor sets manual on the node records it creates, but a session iscsid logs in by itself (records of other tools) scans every LUN the target exports",
                other.unwrap_or("unset (auto)")
            ),
        )
        .hint("set node.session.scan = manual in /etc/iscsi/iscsid.conf"),
    }
}

fn initiator_name(paths: &HostPaths, privileged: Option<&dyn Privileged>) -> Check {
    const NAME: &str = "initiatorname";
    let text = match super::read_host_file::<IscsiInitiatorName>(
        paths,
        "iscsi/initiatorname.iscsi",
        privileged,
    ) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Check::new(NAME, Status::Skip, "no /etc/iscsi/initiatorname.iscsi")
                .hint("open-iscsi creates it at install; without it no iSCSI login works");
        }
        Err(e) => {
            return Check::new(NAME, Status::Warn, format!("cannot be read: {e}"))
                .hint("run moor doctor as a member of the moor group with --key-file, or as root");
        }
    };
    match conf_value(&text, "InitiatorName") {
        Some(v) => match v.parse::<Iqn>() {
            Ok(iqn) => Check::new(NAME, Status::Ok, iqn.to_string()),
            Err(e) => Check::new(NAME, Status::Fail, format!("{v:?} is not valid: {e}")).hint(
                "write InitiatorName=<a valid iqn.…> (iscsi-iname makes one) and restart iscsid",
            ),
        },
        None => Check::new(NAME, Status::Fail, "no InitiatorName= line")
            .hint("write InitiatorName=<a valid iqn.…> (iscsi-iname makes one) and restart iscsid"),
    }
}

fn multipathd(procs: &[Process], probe: &dyn Probe) -> Check {
    const NAME: &str = "multipathd";
    match running(procs, "multipathd") {
        Some(p) => Check::new(NAME, Status::Ok, format!("running (pid {})", p.pid)),
        None if probe.version("multipath").is_none() => Check::new(
            NAME,
            Status::Skip,
            "multipath-tools is not installed: multipath attaches are unavailable",
        ),
        None => Check::new(
            NAME,
            Status::Warn,
            "not running: multipath attaches fail, single-path ones work",
        )
        .hint("systemctl enable --now multipathd"),
    }
}

/// The `find_multipaths` value of the `defaults` section of multipath.conf.
fn defaults_value(text: &str, key: &str) -> Option<String> {
    let mut depth = 0usize;
    let mut in_defaults = false;
    let mut found = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if depth == 0 && line.starts_with("defaults") && line.ends_with('{') {
            in_defaults = true;
            depth = 1;
            continue;
        }
        if line.ends_with('{') {
            depth += 1;
            continue;
        }
        if line == "}" {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                in_defaults = false;
            }
            continue;
        }
        if in_defaults && depth == 1 {
            let mut words = line.split_whitespace();
            if words.next() == Some(key) {
                found = words.next().map(|v| v.trim_matches('"').to_string());
            }
        }
    }
    found
}

fn find_multipaths(paths: &HostPaths, probe: &dyn Probe) -> Check {
    const NAME: &str = "find_multipaths";
    let Ok(text) = std::fs::read_to_string(paths.etc("multipath.conf")) else {
        if probe.version("multipath").is_none() {
            return Check::new(NAME, Status::Skip, "multipath-tools is not installed");
        }
        return Check::new(
            NAME,
            Status::Warn,
            "no /etc/multipath.conf: multipath-tools' built-in defaults apply",
        )
        .hint("write a multipath.conf with `defaults { find_multipaths yes }`");
    };
    match defaults_value(&text, "find_multipaths").as_deref() {
        Some(v @ ("yes" | "on" | "strict" | "smart")) => Check::new(
            NAME,
            Status::Ok,
            format!("{v}: maps only for WWIDs that are whitelisted (moor adds each multipath volume's) or seen on several paths"),
        ),
        Some(v @ ("no" | "off" | "greedy")) => Check::new(
            NAME,
            Status::Warn,
            format!("{v}: multipathd builds a map over every disk, also single-path attaches (moor then finds its disk held by a map it did not ask for)"),
        )
        .hint("set `find_multipaths yes` in the defaults section"),
        Some(v) => Check::new(NAME, Status::Warn, format!("unknown value {v:?}")),
        None => Check::new(
            NAME,
            Status::Warn,
            "not set: the built-in default of the installed multipath-tools applies",
        )
        .hint("set `find_multipaths yes` in the defaults section, so the behaviour does not change with the package"),
    }
}

fn nvme_multipath(paths: &HostPaths) -> Check {
    const NAME: &str = "nvme_core.multipath";
    let attr = paths.sys("module/nvme_core/parameters/multipath");
    match paths.read_attr(&attr).ok().flatten().as_deref().map(str::trim) {
        Some("Y") => Check::new(NAME, Status::Ok, "Y: native NVMe multipath (one head device per namespace)"),
        Some(v) => Check::new(
            NAME,
            Status::Warn,
            format!("{v}: one block device per path; moor's NVMe-oF multipath attaches need native multipath"),
        )
        .hint("boot with nvme_core.multipath=Y (or `options nvme_core multipath=Y` in modprobe.d, then reload the module)"),
        None if paths.sys("module/nvme_core").exists() => {
            Check::new(NAME, Status::Warn, "nvme_core is loaded but shows no multipath parameter (kernel without CONFIG_NVME_MULTIPATH)")
        }
        None => Check::new(NAME, Status::Skip, "nvme_core is not loaded (it loads on the first NVMe-oF connect)"),
    }
}

fn host_nqn(paths: &HostPaths) -> Check {
    const NAME: &str = "hostnqn";
    let file = paths.etc("nvme/hostnqn");
    match paths.read_attr(&file).ok().flatten() {
        None => Check::new(
            NAME,
            Status::Ok,
            "no /etc/nvme/hostnqn yet: the first NVMe-oF attach creates it (nvme.host_identity, from the system UUID)",
        ),
        Some(v) => match v.trim().parse::<Nqn>() {
            Ok(n) => {
                let hostid = paths.read_attr(&paths.etc("nvme/hostid")).ok().flatten();
                Check::new(
                    NAME,
                    Status::Ok,
                    format!(
                        "{n}{}",
                        hostid
                            .map(|h| format!(", hostid {}", h.trim()))
                            .unwrap_or_default()
                    ),
                )
            }
            Err(e) => Check::new(
                NAME,
                Status::Fail,
                format!("{:?} is not valid: {e}", v.trim()),
            )
            .hint("replace /etc/nvme/hostnqn with a valid NQN (nvme gen-hostnqn)"),
        },
    }
}

fn udev(paths: &HostPaths, procs: &[Process]) -> Check {
    const NAME: &str = "udev";
    let control = paths.run("udev/control");
    let daemon = procs
        .iter()
        .find(|p| p.comm == "systemd-udevd" || p.comm == "udevd");
    match (is_socket(&control), daemon) {
        (true, Some(p)) => Check::new(NAME, Status::Ok, format!("{} running (pid {})", p.comm, p.pid)),
        (true, None) => Check::new(NAME, Status::Ok, "control socket /run/udev/control present"),
        (false, _) => Check::new(
            NAME,
            Status::Fail,
            "udev is not running (no /run/udev/control): moor waits for udev to create device nodes and links",
        )
        .hint("start systemd-udevd"),
    }
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Versions(HashMap<&'static str, &'static str>);

    impl Probe for Versions {
        fn version(&self, program: &str) -> Option<String> {
            self.0.get(program).map(|v| v.to_string())
        }
    }

    fn put(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn by_name(checks: &[Check], name: &str) -> Check {
        checks.iter().find(|c| c.name == name).unwrap().clone()
    }

    fn host() -> (tempfile::TempDir, HostPaths) {
        let t = tempfile::tempdir().unwrap();
        let paths = HostPaths::under(t.path());
        (t, paths)
    }

    #[test]
    fn a_conforming_host_passes_every_check() {
        let (t, paths) = host();
        let r = t.path();
        put(r, "proc/153/comm", "iscsid\n");
        put(r, "proc/162/comm", "multipathd\n");
        put(r, "proc/113/comm", "systemd-udevd\n");
        put(
            r,
            "etc/iscsi/iscsid.conf",
            "# x\nnode.session.scan = auto\nnode.session.scan = manual\n",
        );
        put(
            r,
            "etc/iscsi/initiatorname.iscsi",
            "## comment\nInitiatorName=iqn.1993-08.org.debian:01:moor-lab\n",
        );
        put(
            r,
            "etc/multipath.conf",
            "defaults {\n    user_friendly_names no\n    find_multipaths yes # ok\n}\nblacklist {\n    find_multipaths no\n}\n",
        );
        put(r, "sys/module/nvme_core/parameters/multipath", "Y\n");
        put(
            r,
            "etc/nvme/hostnqn",
            "nqn.2014-08.org.nvmexpress:uuid:6d6f6f72-6c61-4200-8000-000000000001\n",
        );
        std::os::unix::net::UnixListener::bind(r.join("run/udev/control"))
            .or_else(|_| {
                std::fs::create_dir_all(r.join("run/udev")).unwrap();
                std::os::unix::net::UnixListener::bind(r.join("run/udev/control"))
            })
            .unwrap();
        let probe = Versions(HashMap::from([
            ("iscsiadm", "iscsiadm version 2.1.8"),
            ("iscsid", "iscsid version 2.1.8"),
            ("multipath", "multipath-tools v0.9.4"),
        ]));
        let checks = run(&paths, &probe, None);
        for c in &checks {
            assert_eq!(c.status, Status::Ok, "{c:?}");
        }
        assert!(by_name(&checks, "iscsid").detail.contains("pid 153"));
        assert!(
            by_name(&checks, "find_multipaths")
                .detail
                .starts_with("yes")
        );
    }

    #[test]
    fn problems_are_named_with_a_hint() {
        let (t, paths) = host();
        let r = t.path();
        put(r, "proc/153/comm", "iscsid\n");
        put(r, "etc/iscsi/iscsid.conf", "node.startup = manual\n");
        put(
            r,
            "etc/iscsi/initiatorname.iscsi",
            "InitiatorName=not an iqn\n",
        );
        put(
            r,
            "etc/multipath.conf",
            "defaults {\n    find_multipaths greedy\n}\n",
        );
        put(r, "sys/module/nvme_core/parameters/multipath", "N\n");
        put(r, "etc/nvme/hostnqn", "nqn-bad\n");
        let probe = Versions(HashMap::from([
            ("iscsiadm", "iscsiadm version 2.1.9"),
            ("iscsid", "iscsid version 2.1.8"),
            ("multipath", "multipath-tools v0.9.4"),
        ]));
        let checks = run(&paths, &probe, None);
        let want = [
            ("iscsid", Status::Fail, "2.1.8, but iscsiadm is 2.1.9"),
            ("node.session.scan", Status::Warn, "unset (auto)"),
            ("initiatorname", Status::Fail, "not valid"),
            ("multipathd", Status::Warn, "not running"),
            ("find_multipaths", Status::Warn, "greedy"),
            ("nvme_core.multipath", Status::Warn, "N:"),
            ("hostnqn", Status::Fail, "not valid"),
            ("udev", Status::Fail, "not running"),
        ];
        for (name, status, text) in want {
            let c = by_name(&checks, name);
            assert_eq!(c.status, status, "{c:?}");
            assert!(c.detail.contains(text), "{c:?}");
            assert!(c.hint.is_some(), "{c:?}");
        }
    }

    #[test]
    fn missing_tools_are_skipped_not_failed() {
        let (_t, paths) = host();
        let checks = run(&paths, &Versions(HashMap::new()), None);
        for name in [
            "iscsid",
            "multipathd",
            "find_multipaths",
            "nvme_core.multipath",
            "initiatorname",
        ] {
            assert_eq!(by_name(&checks, name).status, Status::Skip, "{name}");
        }
        // No hostnqn yet is fine: the first NVMe-oF attach creates it.
        assert_eq!(by_name(&checks, "hostnqn").status, Status::Ok);
    }

    #[test]
    fn a_replaced_iscsid_binary_is_reported() {
        let procs = vec![Process {
            pid: 7,
            comm: "iscsid".into(),
            exe: Some("/usr/sbin/iscsid (deleted)".into()),
        }];
        let probe = Versions(HashMap::from([
            ("iscsiadm", "iscsiadm version 2.1.9"),
            ("iscsid", "iscsid version 2.1.9"),
        ]));
        let c = iscsid(&probe, &procs);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("replaced on disk"), "{c:?}");
    }
}
