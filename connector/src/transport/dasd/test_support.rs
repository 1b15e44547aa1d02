//! Kernel-shaped s390x CCW/DASD trees for tests, built on [`Tree`] the way the
//! common I/O layer, the DASD driver and udev create them (kernel
//! `drivers/s390/cio/device.c`, `css.c`, `blacklist.c`;
//! `drivers/s390/block/dasd_devmap.c`, `dasd_genhd.c`; systemd's `path_id` for the
//! ccw bus; s390-tools' `59-dasd.rules` and `dasdinfo`):
//!
//! ```text
//! proc/cio_ignore                                  "0.0.0000-0.0.b0ff\n…" (ignored devnos)
//! sys/devices/css0/0.0.0023/                       the subchannel (type, chpids, pimpampom)
//!     0.0.b100/                                    <- sys/bus/ccw/devices/0.0.b100
//!         online cutype devtype availability modalias   (CCW device)
//!         driver -> ../../../../bus/ccw/drivers/dasd-eckd
//!         subsystem -> ../../../../bus/ccw
//!         status uid alias vendor discipline readonly use_diag raw_track_access
//!         eer_enabled erplog failfast safe_offline       (DASD driver)
//!         block/dasdb/{dev,size,ro,removable,holders/,slaves/,
//!                      device -> ../../../0.0.b100, dasdb1/{dev,partition,start,size}}
//!                                                  <- sys/block/dasdb (online, not aliases)
//! sys/bus/ccw/drivers/dasd-eckd/0.0.b100 -> ../../../../devices/css0/0.0.0023/0.0.b100
//! dev/dasdb, dev/dasdb1, run/udev/data/b94:4, b94:5
//! dev/disk/by-path/ccw-0.0.b100[-part1] -> ../../dasdb[1]
//! dev/disk/by-id/ccw-IBM.750000000DXP71.2300.05[-part1], ccw-<volser>[-part1]
//!                                                  (by-id only for a formatted DASD:
//!                                                   59-dasd.rules needs status online)
//! ```
//!
//! While a DASD is offline its `status` is `unknown`, its `uid` and `vendor` are
//! empty, `alias` is 0 and `discipline` `none`: the DASD driver only knows them
//! once the device is online.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::attachments::Registry;
use crate::exec::Privileged;
use crate::host::fixture::{Tree, symlink, write};
use crate::host::udev::DeviceEvents;
use crate::lock::LockDir;
use crate::transport::dasd::sysfs::{IgnoredRange, parse_cio_ignore, render_cio_ignore};
use crate::transport::dasd::{DasdConnector, Options};
use crate::types::DasdUid;

pub(crate) const BUSID: &str = "0.0.b100";
pub(crate) const UID: &str = "IBM.750000000DXP71.2300.05";
pub(crate) const OTHER_UID: &str = "IBM.750000000DXP71.2300.06";
/// 3390 model 9 formatted with 4 KiB blocks: 10017 cylinders × 15 tracks × 12
/// blocks, in 512-byte sectors.
pub(crate) const MOD9_SECTORS: u64 = 10017 * 15 * 12 * 8;

/// One DASD of the fixture host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DasdSpec<'a> {
    pub busid: &'a str,
    /// Its subchannel (`0.0.0023`).
    pub schid: &'a str,
    /// Its disk once online (`dasdb`) and the disk's minor (`4`: four minors per
    /// DASD, major 94).
    pub disk: &'a str,
    pub minor: u32,
    pub uid: &'a str,
    /// The volume label dasdinfo reports as `ID_SERIAL`.
    pub volser: &'a str,
    pub alias: bool,
    pub formatted: bool,
    pub partitions: u32,
    pub sectors: u64,
}

/// The volume 0.0.b100 (dasdb): formatted, one partition.
pub(crate) fn volume() -> DasdSpec<'static> {
    DasdSpec {
        busid: BUSID,
        schid: "0.0.0023",
        disk: "dasdb",
        minor: 4,
        uid: UID,
        volser: "0X0B100",
        alias: false,
        formatted: true,
        partitions: 1,
        sectors: MOD9_SECTORS,
    }
}

/// A fresh, unformatted volume 0.0.b100.
pub(crate) fn unformatted() -> DasdSpec<'static> {
    DasdSpec {
        formatted: false,
        partitions: 0,
        ..volume()
    }
}

/// 0.0.b1fe, a HyperPAV alias of the storage server's subsystem 2300.
pub(crate) fn alias() -> DasdSpec<'static> {
    DasdSpec {
        busid: "0.0.b1fe",
        schid: "0.0.0024",
        disk: "dasdc",
        minor: 8,
        uid: "IBM.750000000DXP71.2300.xx",
        alias: true,
        partitions: 0,
        ..volume()
    }
}

pub(crate) struct Env {
    pub _dir: tempfile::TempDir,
    pub t: Tree,
    pub locks: LockDir,
}

impl Env {
    pub fn registry(&self) -> Registry {
        Registry::new(self.t.path("run/moor/attachments"))
    }
}

/// An s390x host: its IPL DASD 0.0.0150 (dasda, online, mounted as root), an OSA
/// network device 0.0.f500 (qeth), everything else on the cio_ignore list except
/// those, 0.0.b100 and the alias 0.0.b1fe.
pub(crate) fn setup() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(dir.path().join("root"));
    let root_disk = DasdSpec {
        busid: "0.0.0150",
        schid: "0.0.0000",
        disk: "dasda",
        minor: 0,
        uid: "IBM.750000000DXP71.1500.20",
        volser: "0X0150",
        partitions: 2,
        ..volume()
    };
    add_dasd(&t, &root_disk);
    kernel_online(&t, &root_disk);
    udev_online(&t, &root_disk);
    let qeth = t.path("sys/devices/css0/0.0.0040/0.0.f500");
    write(&qeth.join("online"), "1\n");
    write(&qeth.join("cutype"), "1731/01\n");
    write(&qeth.join("devtype"), "1732/01\n");
    write(&qeth.join("availability"), "good\n");
    symlink(&qeth.join("driver"), &t.path("sys/bus/ccw/drivers/qeth"));
    symlink(&t.path("sys/bus/ccw/devices/0.0.f500"), &qeth);
    set_ignored(
        &t,
        &[
            (0, 0x0000, 0x014f),
            (0, 0x0151, 0xb0ff),
            (0, 0xb101, 0xb1fd),
            (0, 0xb1ff, 0xf4ff),
            (0, 0xf501, 0xffff),
            (1, 0x0000, 0xffff),
            (2, 0x0000, 0xffff),
            (3, 0x0000, 0xffff),
        ],
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
) -> DasdConnector<'a> {
    DasdConnector {
        paths: env.t.paths(),
        privileged: p,
        events: e,
        locks: env.locks.clone(),
        registry: env.registry(),
        options: Options {
            timeout: Duration::from_secs(10),
        },
    }
}

fn dev_dir(t: &Tree, d: &DasdSpec<'_>) -> PathBuf {
    t.path(&format!("sys/devices/css0/{}/{}", d.schid, d.busid))
}

fn attrs(dir: &std::path::Path, kv: &[(&str, &str)]) {
    for (k, v) in kv {
        write(&dir.join(k), &format!("{v}\n"));
    }
}

/// `/proc/cio_ignore` lists `ranges` (ssid, from, to) of css 0.
pub(crate) fn set_ignored(t: &Tree, ranges: &[(u8, u16, u16)]) {
    let ranges: Vec<IgnoredRange> = ranges
        .iter()
        .map(|&(ssid, from, to)| IgnoredRange {
            css: 0,
            ssid,
            from,
            to,
        })
        .collect();
    write(&t.path("proc/cio_ignore"), &render_cio_ignore(&ranges));
}

/// `echo free <busid> > /proc/cio_ignore`: the device number leaves the list.
pub(crate) fn unignore(t: &Tree, busid: &str) {
    let text = fs::read_to_string(t.path("proc/cio_ignore")).unwrap_or_default();
    let id: crate::types::CcwBusId = busid.parse().unwrap();
    let devno = id.devno();
    let ssid = u8::from_str_radix(&id.to_string()[2..3], 16).unwrap();
    let mut out = Vec::new();
    for r in parse_cio_ignore(&text).unwrap() {
        if r.ssid != ssid || !(r.from..=r.to).contains(&devno) {
            out.push(r);
            continue;
        }
        if r.from < devno {
            out.push(IgnoredRange { to: devno - 1, ..r });
        }
        if devno < r.to {
            out.push(IgnoredRange {
                from: devno + 1,
                ..r
            });
        }
    }
    write(&t.path("proc/cio_ignore"), &render_cio_ignore(&out));
}

/// The common I/O layer registers DASD `d` (offline) and dasd-eckd binds to it.
pub(crate) fn add_dasd(t: &Tree, d: &DasdSpec<'_>) {
    let sch = t.path(&format!("sys/devices/css0/{}", d.schid));
    attrs(
        &sch,
        &[
            ("type", "0"),
            ("chpids", "40 41 42 43 00 00 00 00"),
            ("pimpampom", "f0 f0 f0"),
        ],
    );
    let dir = dev_dir(t, d);
    attrs(
        &dir,
        &[
            ("online", "0"),
            ("cutype", "3990/e9"),
            ("devtype", "3390/0c"),
            ("availability", "good"),
            ("modalias", "ccw:t3990mE9dt3390dm0C"),
            ("status", "unknown"),
            ("uid", ""),
            ("alias", "0"),
            ("vendor", ""),
            ("discipline", "none"),
            ("readonly", "0"),
            ("use_diag", "0"),
            ("raw_track_access", "0"),
            ("eer_enabled", "0"),
            ("erplog", "0"),
            ("failfast", "0"),
        ],
    );
    // Write-only.
    write(&dir.join("safe_offline"), "");
    symlink(&dir.join("subsystem"), &t.path("sys/bus/ccw"));
    symlink(
        &dir.join("driver"),
        &t.path("sys/bus/ccw/drivers/dasd-eckd"),
    );
    symlink(
        &t.path(&format!("sys/bus/ccw/drivers/dasd-eckd/{}", d.busid)),
        &dir,
    );
    symlink(&t.path(&format!("sys/bus/ccw/devices/{}", d.busid)), &dir);
}

/// The device is registered but no driver has bound to it yet (the probe runs
/// asynchronously after registration).
pub(crate) fn unbind(t: &Tree, d: &DasdSpec<'_>) {
    t.remove(&format!("sys/devices/css0/{}/{}/driver", d.schid, d.busid));
    t.remove(&format!("sys/bus/ccw/drivers/dasd-eckd/{}", d.busid));
}

/// dasd-eckd binds to `d` (see [`unbind`]).
pub(crate) fn bind(t: &Tree, d: &DasdSpec<'_>) {
    let dir = dev_dir(t, d);
    symlink(
        &dir.join("driver"),
        &t.path("sys/bus/ccw/drivers/dasd-eckd"),
    );
    symlink(
        &t.path(&format!("sys/bus/ccw/drivers/dasd-eckd/{}", d.busid)),
        &dir,
    );
}

fn part_minor(d: &DasdSpec<'_>, n: u32) -> u32 {
    d.minor + n
}

/// The kernel side of setting `d` online: the CCW device's `online`, the DASD
/// driver's state and identity, and (for a base device) its disk with its
/// partitions.
pub(crate) fn kernel_online(t: &Tree, d: &DasdSpec<'_>) {
    let dir = dev_dir(t, d);
    let status = if d.formatted { "online" } else { "unformatted" };
    attrs(
        &dir,
        &[
            ("online", "1"),
            ("status", status),
            ("uid", d.uid),
            ("alias", if d.alias { "1" } else { "0" }),
            ("vendor", "IBM"),
            ("discipline", "ECKD"),
        ],
    );
    if d.alias {
        return;
    }
    let disk = dir.join("block").join(d.disk);
    let sectors = if d.formatted { d.sectors } else { 0 };
    attrs(
        &disk,
        &[
            ("dev", &format!("94:{}", d.minor)),
            ("size", &sectors.to_string()),
            ("ro", "0"),
            ("removable", "0"),
        ],
    );
    fs::create_dir_all(disk.join("holders")).unwrap();
    fs::create_dir_all(disk.join("slaves")).unwrap();
    symlink(&disk.join("device"), &dir);
    symlink(&t.path(&format!("sys/block/{}", d.disk)), &disk);
    for n in 1..=d.partitions {
        add_partition_dir(t, d, n);
    }
}

fn add_partition_dir(t: &Tree, d: &DasdSpec<'_>, n: u32) {
    let part = dev_dir(t, d)
        .join("block")
        .join(d.disk)
        .join(format!("{}{n}", d.disk));
    // CDL: the first partition starts after the label and VTOC tracks (track 2:
    // 2 tracks × 12 blocks × 8 sectors).
    let start = 192;
    attrs(
        &part,
        &[
            ("dev", &format!("94:{}", part_minor(d, n))),
            ("partition", &n.to_string()),
            ("start", &start.to_string()),
            (
                "size",
                &(d.sectors / u64::from(d.partitions) - start).to_string(),
            ),
        ],
    );
}

/// udev has processed `d`'s disk and partitions: nodes, database entries, the
/// by-path links and, for a formatted DASD, the by-id links of 59-dasd.rules.
pub(crate) fn udev_online(t: &Tree, d: &DasdSpec<'_>) {
    if d.alias {
        return;
    }
    let mut links = vec![format!("by-path/ccw-{}", d.busid)];
    let by_id = |suffix: &str| {
        let uid: DasdUid = d.uid.parse().unwrap();
        let mut ids = vec![
            format!("by-id/ccw-{}{suffix}", uid.base()),
            format!("by-id/ccw-{}{suffix}", d.volser),
        ];
        if uid.as_str() != uid.base() {
            ids.push(format!("by-id/ccw-{}{suffix}", uid.as_str()));
        }
        ids
    };
    if d.formatted {
        links.extend(by_id(""));
    }
    t.udev_add(d.disk, &format!("94:{}", d.minor), &links);
    for n in 1..=d.partitions {
        let mut links = vec![format!("by-path/ccw-{}-part{n}", d.busid)];
        links.extend(by_id(&format!("-part{n}")));
        t.udev_add(
            &format!("{}{n}", d.disk),
            &format!("94:{}", part_minor(d, n)),
            &links,
        );
    }
}

/// dasdfmt finished on `d`: the DASD driver analysed the new format (status
/// `online`, the disk's capacity), and udev's change event added the by-id links.
pub(crate) fn formatted(t: &Tree, d: &DasdSpec<'_>) {
    let d = DasdSpec {
        formatted: true,
        partitions: 0,
        ..*d
    };
    let dir = dev_dir(t, &d);
    attrs(&dir, &[("status", "online")]);
    attrs(
        &dir.join("block").join(d.disk),
        &[("size", &d.sectors.to_string())],
    );
    udev_online(t, &d);
}

/// fdasd -a wrote one partition on formatted `d`: the kernel re-read the table
/// and udev created the partition's node and links.
pub(crate) fn partitioned(t: &Tree, d: &DasdSpec<'_>) {
    let d = DasdSpec {
        formatted: true,
        partitions: 1,
        ..*d
    };
    add_partition_dir(t, &d, 1);
    udev_online(t, &d);
}

/// The kernel side of setting `d` offline: the disk goes, the DASD driver forgets
/// the device's identity.
pub(crate) fn kernel_offline(t: &Tree, d: &DasdSpec<'_>) {
    let dir = dev_dir(t, d);
    attrs(
        &dir,
        &[
            ("online", "0"),
            ("status", "unknown"),
            ("uid", ""),
            ("alias", "0"),
            ("vendor", ""),
            ("discipline", "none"),
        ],
    );
    t.remove(&format!("sys/devices/css0/{}/{}/block", d.schid, d.busid));
    t.remove(&format!("sys/block/{}", d.disk));
}

/// udev processed the removal of `d`'s disk and partitions.
pub(crate) fn udev_offline(t: &Tree, d: &DasdSpec<'_>) {
    for n in 1..=4 {
        t.udev_remove(
            &format!("{}{n}", d.disk),
            &format!("94:{}", part_minor(d, n)),
        );
    }
    t.udev_remove(d.disk, &format!("94:{}", d.minor));
}

/// Another volume now answers at `d`'s device number (the storage admin remapped
/// it): the uid the online device shows changes.
pub(crate) fn change_uid(t: &Tree, d: &DasdSpec<'_>, uid: &str) {
    attrs(&dev_dir(t, d), &[("uid", uid)]);
}
