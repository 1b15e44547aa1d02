//! Kernel-shaped NVMe-oF sysfs for tests, built on [`Tree`] the way the kernel
//! creates it (`drivers/nvme/host/core.c`, `multipath.c`, `sysfs.c`):
//!
//! ```text
//! sys/devices/virtual/nvme-fabrics/ctl/                   <- sys/class/nvme-fabrics/ctl
//!     nvmeC/{subsysnqn,transport,address,hostnqn,hostid,state,cntlid,
//!            reconnect_delay,ctrl_loss_tmo,fast_io_fail_tmo,rescan_controller,
//!            delete_controller}                           <- sys/class/nvme/nvmeC
//!     nvmeC/nvmeScCnH/{uuid,nguid,nsid,wwid,size,ana_state,hidden}  (multipath path)
//!                                                         <- sys/block/nvmeScCnH
//!     nvmeC/nvmeCnH/{…,dev}                               (no native multipath)
//!                                                         <- sys/block/nvmeCnH
//! sys/devices/virtual/nvme-subsystem/nvme-subsysS/        <- sys/class/nvme-subsystem/nvme-subsysS
//!     subsysnqn, iopolicy, nvmeC -> ../../nvme-fabrics/ctl/nvmeC
//!     nvmeSnH/{uuid,nguid,nsid,wwid,size,dev,hidden,multipath/nvmeScCnH -> path}
//!                                                         <- sys/block/nvmeSnH
//! dev/nvmeC, dev/nvmeSnH (or dev/nvmeCnH), run/udev/data/b259:M
//! ```
//!
//! The subsystem's instance is its first controller's (the kernel reuses it), so
//! with two controllers nvme0 and nvme1 on nvme-subsys0 the paths are `nvme0c0n1`
//! and `nvme0c1n1` under the head `nvme0n1`.

use std::fs;
use std::path::PathBuf;

use std::time::Duration;

use crate::attachments::Registry;
use crate::exec::Privileged;
use crate::host::fixture::{Tree, symlink, write};
use crate::host::udev::DeviceEvents;
use crate::lock::LockDir;
use crate::transport::nvmeof::{NvmeofConnector, Options};

pub(crate) struct Env {
    pub _dir: tempfile::TempDir,
    pub t: Tree,
    pub locks: LockDir,
}

/// A host with its NVMe identity and native multipath as given.
pub(crate) fn setup(native_multipath: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(dir.path().join("root"));
    write(&t.path("etc/nvme/hostnqn"), &format!("{HOSTNQN}\n"));
    write(&t.path("etc/nvme/hostid"), &format!("{HOSTID}\n"));
    write(
        &t.path("sys/module/nvme_core/parameters/multipath"),
        if native_multipath { "Y\n" } else { "N\n" },
    );
    let locks = LockDir::new(dir.path().join("locks"));
    Env {
        _dir: dir,
        t,
        locks,
    }
}

/// A connector on `env` (10 s deadline).
pub(crate) fn connector<'a>(
    env: &Env,
    p: &'a dyn Privileged,
    e: &'a dyn DeviceEvents,
    multipath: bool,
) -> NvmeofConnector<'a> {
    NvmeofConnector {
        paths: env.t.paths(),
        privileged: p,
        events: e,
        locks: env.locks.clone(),
        registry: Registry::new(env.t.path("run/moor/attachments")),
        options: Options {
            timeout: Duration::from_secs(10),
            multipath,
        },
    }
}

/// A controller to create.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CtrlSpec<'a> {
    pub nqn: &'a str,
    pub transport: &'a str,
    pub traddr: &'a str,
    pub trsvcid: u16,
    pub hostnqn: &'a str,
    pub state: &'a str,
    /// Newer kernels append the local address for TCP.
    pub src_addr: Option<&'a str>,
}

/// A namespace to create: head instance `head`, `nsid`, identifiers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NsSpec<'a> {
    pub head: u32,
    pub nsid: u32,
    pub uuid: Option<&'a str>,
    pub nguid: Option<&'a str>,
    pub size_sectors: u64,
}

pub(crate) const HOSTNQN: &str =
    "nqn.2014-08.org.nvmexpress:uuid:9126e942-396d-11e7-b0b7-a81e84c186d1";
pub(crate) const HOSTID: &str = "9126e942-396d-11e7-b0b7-a81e84c186d1";
pub(crate) const SUBSYS: &str = "nqn.2016-06.io.spdk:cnode1";
pub(crate) const SUBSYS2: &str = "nqn.2016-06.io.spdk:cnode2";
pub(crate) const UUID1: &str = "c20aba21-6ef6-446b-b374-45733b4883ba";
pub(crate) const UUID2: &str = "5b3e2d1c-0f9a-4e8b-8c7d-6a5b4c3d2e1f";
pub(crate) const NGUID1: &str = "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f";

/// A live TCP controller of the test host to `nqn` at `traddr:4420`.
pub(crate) fn tcp<'a>(nqn: &'a str, traddr: &'a str) -> CtrlSpec<'a> {
    CtrlSpec {
        nqn,
        transport: "tcp",
        traddr,
        trsvcid: 4420,
        hostnqn: HOSTNQN,
        state: "live",
        src_addr: None,
    }
}

/// Namespace `nsid` (head instance `nsid`) with a UUID.
pub(crate) fn ns(nsid: u32, uuid: &str) -> NsSpec<'_> {
    NsSpec {
        head: nsid,
        nsid,
        uuid: Some(uuid),
        nguid: None,
        size_sectors: 2_097_152,
    }
}

fn ctrl_dir(t: &Tree, c: u32) -> PathBuf {
    t.path(&format!("sys/devices/virtual/nvme-fabrics/ctl/nvme{c}"))
}

fn subsys_dir(t: &Tree, s: u32) -> PathBuf {
    t.path(&format!(
        "sys/devices/virtual/nvme-subsystem/nvme-subsys{s}"
    ))
}

/// The kernel creates subsystem instance `s` for `nqn`.
pub(crate) fn add_subsystem(t: &Tree, s: u32, nqn: &str) {
    let dir = subsys_dir(t, s);
    write(&dir.join("subsysnqn"), &format!("{nqn}\n"));
    write(&dir.join("iopolicy"), "numa\n");
    symlink(
        &t.path(&format!("sys/class/nvme-subsystem/nvme-subsys{s}")),
        &dir,
    );
}

/// The kernel creates controller `nvme<c>` of subsystem `s` (created first if
/// needed).
pub(crate) fn add_controller(t: &Tree, c: u32, s: u32, spec: &CtrlSpec<'_>) {
    if !subsys_dir(t, s).exists() {
        add_subsystem(t, s, spec.nqn);
    }
    let ctl = t.path("sys/devices/virtual/nvme-fabrics/ctl");
    if !ctl.exists() {
        write(&ctl.join("dev"), "10:122\n");
        symlink(&t.path("sys/class/nvme-fabrics/ctl"), &ctl);
    }
    let dir = ctrl_dir(t, c);
    let mut address = format!("traddr={},trsvcid={}", spec.traddr, spec.trsvcid);
    if let Some(src) = spec.src_addr {
        address.push_str(&format!(",src_addr={src}"));
    }
    for (attr, value) in [
        ("subsysnqn", spec.nqn),
        ("transport", spec.transport),
        ("address", &address),
        ("hostnqn", spec.hostnqn),
        ("hostid", HOSTID),
        ("state", spec.state),
        ("cntlid", &c.to_string()),
        ("reconnect_delay", "10"),
        ("ctrl_loss_tmo", "off"),
        ("fast_io_fail_tmo", "off"),
        ("dev", &format!("249:{c}")),
    ] {
        write(&dir.join(attr), &format!("{value}\n"));
    }
    // Write-only attributes.
    write(&dir.join("rescan_controller"), "");
    write(&dir.join("delete_controller"), "");
    symlink(&t.path(&format!("sys/class/nvme/nvme{c}")), &dir);
    symlink(&subsys_dir(t, s).join(format!("nvme{c}")), &dir);
    write(&t.path(&format!("dev/nvme{c}")), "");
}

/// The controller's state changes (`live`, `connecting`, …).
pub(crate) fn set_state(t: &Tree, c: u32, state: &str) {
    write(&ctrl_dir(t, c).join("state"), &format!("{state}\n"));
}

/// The identify attributes of a namespace disk, as the kernel shows them.
fn write_ns_attrs(dir: &std::path::Path, ns: &NsSpec<'_>) {
    write(&dir.join("nsid"), &format!("{}\n", ns.nsid));
    write(&dir.join("size"), &format!("{}\n", ns.size_sectors));
    if let Some(g) = ns.nguid {
        write(&dir.join("nguid"), &format!("{g}\n"));
    }
    // No UUID: the kernel shows the NGUID as `uuid` (or hides `uuid` without both).
    if let Some(u) = ns.uuid.or(ns.nguid) {
        write(&dir.join("uuid"), &format!("{u}\n"));
    }
    let wwid = match (ns.uuid, ns.nguid) {
        (Some(u), _) => format!("uuid.{u}"),
        (None, Some(g)) => format!("eui.{}", g.replace('-', "")),
        (None, None) => format!("nvme.0000-4d4f4f52-4d4f4f52-{:08x}", ns.nsid),
    };
    write(&dir.join("wwid"), &format!("{wwid}\n"));
}

/// udev has processed block device `name` (`major:minor` `devnum`).
fn udev_block(t: &Tree, name: &str, devnum: &str) {
    write(&t.path(&format!("run/udev/data/b{devnum}")), "");
    write(&t.path(&format!("dev/{name}")), "");
}

/// Namespace `ns` appears on controller `c` of subsystem `s`. With `multipath`
/// (native NVMe multipath) a hidden path `nvmeScCnH` and, for the first path, the
/// head `nvmeSnH`; without, the disk `nvmeCnH`.
pub(crate) fn add_namespace(t: &Tree, c: u32, s: u32, ns: &NsSpec<'_>, multipath: bool) {
    let h = ns.head;
    if multipath {
        let head = subsys_dir(t, s).join(format!("nvme{s}n{h}"));
        if !head.exists() {
            let devnum = format!("259:{}", s * 100 + h);
            write_ns_attrs(&head, ns);
            write(&head.join("dev"), &format!("{devnum}\n"));
            write(&head.join("hidden"), "0\n");
            fs::create_dir_all(head.join("multipath")).expect("mkdir");
            symlink(&t.path(&format!("sys/block/nvme{s}n{h}")), &head);
            udev_block(t, &format!("nvme{s}n{h}"), &devnum);
        }
        let name = format!("nvme{s}c{c}n{h}");
        let path = ctrl_dir(t, c).join(&name);
        write_ns_attrs(&path, ns);
        write(&path.join("ana_state"), "optimized\n");
        write(&path.join("ana_grpid"), "1\n");
        write(&path.join("hidden"), "1\n");
        symlink(&t.path(&format!("sys/block/{name}")), &path);
        symlink(&head.join("multipath").join(&name), &path);
    } else {
        let name = format!("nvme{c}n{h}");
        let dir = ctrl_dir(t, c).join(&name);
        let devnum = format!("259:{}", c * 100 + h);
        write_ns_attrs(&dir, ns);
        write(&dir.join("dev"), &format!("{devnum}\n"));
        write(&dir.join("hidden"), "0\n");
        symlink(&t.path(&format!("sys/block/{name}")), &dir);
        udev_block(t, &name, &devnum);
    }
}

/// The array gives namespace `nsid` of controller `c` a new identity (another
/// volume at the same nsid): every disk of it under `c` (and its head) changes.
pub(crate) fn change_identity(t: &Tree, c: u32, s: u32, ns: &NsSpec<'_>) {
    let dir = ctrl_dir(t, c);
    for e in fs::read_dir(&dir)
        .expect("controller")
        .filter_map(Result::ok)
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("nvme") && n.ends_with(&format!("n{}", ns.head)) {
            for a in ["uuid", "nguid", "wwid"] {
                let _ = fs::remove_file(e.path().join(a));
            }
            write_ns_attrs(&e.path(), ns);
        }
    }
    let head = subsys_dir(t, s).join(format!("nvme{s}n{}", ns.head));
    if head.exists() {
        for a in ["uuid", "nguid", "wwid"] {
            let _ = fs::remove_file(head.join(a));
        }
        write_ns_attrs(&head, ns);
    }
}

/// The kernel deletes controller `c` of subsystem `s` (`delete_controller`): its
/// namespace disks go with it, and a multipath head goes with its last path.
pub(crate) fn remove_controller(t: &Tree, c: u32, s: u32) {
    let dir = ctrl_dir(t, c);
    for e in fs::read_dir(&dir)
        .expect("controller")
        .filter_map(Result::ok)
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.starts_with("nvme") || !e.path().is_dir() {
            continue;
        }
        t.remove(&format!("sys/block/{n}"));
        if let Some(rest) = n.strip_prefix(&format!("nvme{s}c{c}n")) {
            // A path: unlink it from its head; the head goes when no path is left.
            let head = subsys_dir(t, s).join(format!("nvme{s}n{rest}"));
            let _ = fs::remove_file(head.join("multipath").join(&n));
            let paths_left = fs::read_dir(head.join("multipath"))
                .map(|d| d.count())
                .unwrap_or(0);
            if paths_left == 0 && head.exists() {
                let devnum = fs::read_to_string(head.join("dev")).expect("dev");
                fs::remove_dir_all(&head).expect("rm head");
                let name = format!("nvme{s}n{rest}");
                t.remove(&format!("sys/block/{name}"));
                t.remove(&format!("dev/{name}"));
                t.remove(&format!("run/udev/data/b{}", devnum.trim()));
            }
        } else {
            let devnum = fs::read_to_string(e.path().join("dev")).expect("dev");
            t.remove(&format!("dev/{n}"));
            t.remove(&format!("run/udev/data/b{}", devnum.trim()));
        }
    }
    fs::remove_dir_all(&dir).expect("rm controller");
    t.remove(&format!("sys/class/nvme/nvme{c}"));
    let _ = fs::remove_file(subsys_dir(t, s).join(format!("nvme{c}")));
    t.remove(&format!("dev/nvme{c}"));
}

/// The namespace with head instance `head` now has `sectors` 512-byte sectors on
/// every disk under controller `c` (and on its head).
pub(crate) fn set_size(t: &Tree, c: u32, s: u32, head: u32, sectors: u64) {
    for e in fs::read_dir(ctrl_dir(t, c))
        .expect("controller")
        .filter_map(Result::ok)
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("nvme") && n.ends_with(&format!("n{head}")) {
            write(&e.path().join("size"), &format!("{sectors}\n"));
        }
    }
    let h = subsys_dir(t, s).join(format!("nvme{s}n{head}"));
    if h.exists() {
        write(&h.join("size"), &format!("{sectors}\n"));
    }
}

/// mdadm assembled MD array `md<n>` (`/dev/md/<alias>`) over the block devices
/// `legs`, as the kernel and udev's mdadm rules show it.
pub(crate) fn add_md(t: &Tree, n: u32, alias: &str, legs: &[&str], state: &str, sectors: u64) {
    let name = format!("md{n}");
    let dir = t.path(&format!("sys/devices/virtual/block/{name}"));
    write(&dir.join("md/array_state"), &format!("{state}\n"));
    write(&dir.join("md/level"), "raid1\n");
    write(&dir.join("size"), &format!("{sectors}\n"));
    write(&dir.join("dev"), &format!("9:{n}\n"));
    fs::create_dir_all(dir.join("slaves")).expect("mkdir");
    for leg in legs {
        symlink(
            &dir.join("slaves").join(leg),
            &t.path(&format!("sys/block/{leg}")),
        );
        symlink(&t.path(&format!("sys/block/{leg}/holders/{name}")), &dir);
    }
    symlink(&t.path(&format!("sys/block/{name}")), &dir);
    write(&t.path(&format!("dev/{name}")), "");
    write(&t.path(&format!("run/udev/data/b9:{n}")), "");
    symlink(
        &t.path(&format!("dev/md/{alias}")),
        &t.path(&format!("dev/{name}")),
    );
}

/// mdadm --stop: the array, its holders links and `/dev/md/<alias>` go.
pub(crate) fn remove_md(t: &Tree, n: u32, alias: &str) {
    let name = format!("md{n}");
    let dir = t.path(&format!("sys/devices/virtual/block/{name}"));
    if let Ok(slaves) = fs::read_dir(dir.join("slaves")) {
        for s in slaves.filter_map(Result::ok) {
            let leg = s.file_name().to_string_lossy().into_owned();
            t.remove(&format!("sys/block/{leg}/holders/{name}"));
        }
    }
    fs::remove_dir_all(&dir).expect("rm md");
    for rel in [
        format!("sys/block/{name}"),
        format!("dev/{name}"),
        format!("run/udev/data/b9:{n}"),
        format!("dev/md/{alias}"),
    ] {
        t.remove(&rel);
    }
}

/// udev's blkid found MD metadata on block device `name` (its database entry).
pub(crate) fn mark_raid_member(t: &Tree, name: &str) {
    let devnum = fs::read_to_string(t.path(&format!("sys/block/{name}/dev"))).expect("dev");
    write(
        &t.path(&format!("run/udev/data/b{}", devnum.trim())),
        "E:ID_FS_TYPE=linux_raid_member\nE:ID_FS_UUID=3d1e5c1a-0d2f-4e6c-9a1b-2c3d4e5f6a7b\n",
    );
}
