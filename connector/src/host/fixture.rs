//! A kernel-shaped host tree for tests: `sys/`, `dev/` and `run/` under a temporary
//! directory, built and changed the way the kernel and udev would (see
//! `connector/testdata/README.md` for the layout the static fixtures record).
//!
//! ```text
//! sys/devices/platform/hostH/scsi_host/hostH             <- sys/class/scsi_host/hostH
//! sys/devices/platform/hostH/sessionN/iscsi_session/sessionN/{targetname,state,target_id}
//!                                                        <- sys/class/iscsi_session/sessionN
//!     .../sessionN/device -> ../../../sessionN
//! sys/devices/platform/hostH/sessionN/connectionN:0/iscsi_connection/connectionN:0/
//!     {persistent_address,persistent_port}               <- sys/class/iscsi_connection/connectionN:0
//! sys/devices/platform/hostH/sessionN/targetH:C:T/H:C:T:L/{state,wwid}
//!                                                        <- sys/bus/scsi/devices/H:C:T:L
//!     .../H:C:T:L/block/sdX/{dev,size,holders/,device -> ../../../H:C:T:L}
//!                                                        <- sys/block/sdX
//! dev/sdX, dev/disk/by-*/<link> -> ../../sdX, run/udev/data/bM:m
//! ```
//!
//! Every link is relative, as sysfs and udev write them, so [`HostPaths::resolve`]
//! stays inside the tree.

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::HostPaths;
use super::scsi::Hctl;

/// `to` relative to the directory of `link` (both absolute, same root).
fn relative(link: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = link
        .parent()
        .expect("link has a parent")
        .components()
        .collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c);
    }
    rel
}

/// Creates `link` pointing (relatively) at `to`, with its parent directories.
pub(crate) fn symlink(link: &Path, to: &Path) {
    fs::create_dir_all(link.parent().expect("link has a parent")).expect("mkdir");
    std::os::unix::fs::symlink(relative(link, to), link).expect("symlink");
}

/// Writes `text` to `path`, creating its parent directories.
pub(crate) fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("file has a parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

/// Removes a file, symlink or directory tree; absent is fine.
fn remove(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let r = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        // Removed meanwhile by another (simulated) kernel or udev thread.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        r => r.expect("rm"),
    }
}

/// The udev by-id link names of a disk with raw sysfs WWID `raw` (`naa.600a…`):
/// `wwn-0x600a…` and `scsi-3600a…`.
pub(crate) fn by_id_links(raw: &str) -> Vec<String> {
    let normalised = super::scsi::normalize_wwid(raw);
    let mut links = vec![format!("by-id/scsi-{normalised}")];
    if let Some(hex) = raw.strip_prefix("naa.") {
        links.push(format!("by-id/wwn-0x{hex}"));
    }
    links
}

/// A fixture host tree (cheap to clone: clones share the directory).
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pub root: PathBuf,
}

impl Tree {
    /// A tree rooted at `root` (created if needed).
    pub fn new(root: impl Into<PathBuf>) -> Tree {
        let root = root.into();
        fs::create_dir_all(root.join("sys")).expect("mkdir");
        fs::create_dir_all(root.join("dev")).expect("mkdir");
        fs::create_dir_all(root.join("run")).expect("mkdir");
        Tree { root }
    }

    pub fn paths(&self) -> HostPaths {
        HostPaths::under(&self.root)
    }

    /// `<root>/<rel>`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.path(rel)).is_ok()
    }

    /// Removes `<root>/<rel>` (file, link or directory); absent is fine.
    pub fn remove(&self, rel: &str) {
        remove(&self.path(rel));
    }

    fn host_dir(&self, host: u32) -> PathBuf {
        self.path(&format!("sys/devices/platform/host{host}"))
    }

    /// The kernel adds SCSI host `host` (an iSCSI login on `iscsi_tcp` does).
    pub fn add_host(&self, host: u32) {
        let dir = self.host_dir(host).join(format!("scsi_host/host{host}"));
        write(&dir.join("proc_name"), "iscsi_tcp\n");
        let class = self.path(&format!("sys/class/scsi_host/host{host}"));
        if fs::symlink_metadata(&class).is_err() {
            symlink(&class, &dir);
            symlink(&dir.join("device"), &self.host_dir(host));
        }
    }

    /// The session's device directory (`…/hostH/sessionN`) of an existing session.
    pub fn session_dir(&self, session: u32) -> PathBuf {
        fs::canonicalize(self.path(&format!("sys/class/iscsi_session/session{session}/device")))
            .expect("no such session in the fixture")
    }

    /// The kernel creates iSCSI session `session` on host `host` (adding the host if
    /// needed): `targetname`, `state` LOGGED_IN, `target_id`, and connection 0 with
    /// `persistent_address`/`persistent_port`. No SCSI target is scanned yet.
    pub fn add_session(
        &self,
        session: u32,
        host: u32,
        iqn: &str,
        address: &str,
        port: u16,
        target_id: u32,
    ) {
        self.add_host(host);
        let dev = self.host_dir(host).join(format!("session{session}"));
        let class_dir = dev.join(format!("iscsi_session/session{session}"));
        write(&class_dir.join("targetname"), &format!("{iqn}\n"));
        write(&class_dir.join("state"), "LOGGED_IN\n");
        write(&class_dir.join("target_id"), &format!("{target_id}\n"));
        write(&class_dir.join("ifacename"), "default\n");
        symlink(&class_dir.join("device"), &dev);
        symlink(
            &self.path(&format!("sys/class/iscsi_session/session{session}")),
            &class_dir,
        );
        let conn = dev.join(format!(
            "connection{session}:0/iscsi_connection/connection{session}:0"
        ));
        write(&conn.join("persistent_address"), &format!("{address}\n"));
        write(&conn.join("persistent_port"), &format!("{port}\n"));
        write(&conn.join("address"), &format!("{address}\n"));
        write(&conn.join("port"), &format!("{port}\n"));
        symlink(
            &self.path(&format!("sys/class/iscsi_connection/connection{session}:0")),
            &conn,
        );
    }

    /// The kernel removes session `session` (logout): every SCSI device on it
    /// (kernel side only; see [`Tree::remove_lun`]), then the session and its
    /// connection. The SCSI host goes too (`iscsi_tcp` has one host per session).
    pub fn remove_session(&self, session: u32) {
        let dir = self.session_dir(session);
        for hctl in self.session_luns(session) {
            self.remove_lun(hctl);
        }
        let host = dir
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("host"))
            .and_then(|n| n.parse::<u32>().ok())
            .expect("session inside hostH");
        self.remove(&format!("sys/class/iscsi_session/session{session}"));
        self.remove(&format!("sys/class/iscsi_connection/connection{session}:0"));
        remove(&dir);
        let left = fs::read_dir(self.host_dir(host))
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with("session"))
            })
            .unwrap_or(false);
        if !left {
            self.remove(&format!("sys/class/scsi_host/host{host}"));
            remove(&self.host_dir(host));
        }
    }

    /// The SCSI devices (`H:C:T:L`) of session `session`.
    pub fn session_luns(&self, session: u32) -> Vec<Hctl> {
        let dir = self.session_dir(session);
        let mut out = Vec::new();
        for t in fs::read_dir(&dir)
            .expect("session dir")
            .filter_map(Result::ok)
        {
            if !t.file_name().to_string_lossy().starts_with("target") {
                continue;
            }
            for d in fs::read_dir(t.path())
                .expect("target dir")
                .filter_map(Result::ok)
            {
                if let Ok(h) = d.file_name().to_string_lossy().parse::<Hctl>() {
                    out.push(h);
                }
            }
        }
        out.sort();
        out
    }

    /// The kernel adds SCSI device `hctl` on session `session` (what a scan of an
    /// existing LUN does synchronously): `targetH:C:T/H:C:T:L` with `state`, and
    /// `/sys/bus/scsi/devices/H:C:T:L`. No block device yet (sd probes async).
    pub fn add_scsi_device(&self, session: u32, hctl: Hctl) {
        let sd = self
            .session_dir(session)
            .join(format!("target{}", hctl.target()))
            .join(hctl.to_string());
        write(&sd.join("state"), "running\n");
        let bus = self.path(&format!("sys/bus/scsi/devices/{hctl}"));
        if fs::symlink_metadata(&bus).is_err() {
            symlink(&bus, &sd);
        }
    }

    fn scsi_dir(&self, hctl: Hctl) -> PathBuf {
        fs::canonicalize(self.path(&format!("sys/bus/scsi/devices/{hctl}")))
            .expect("no such SCSI device in the fixture")
    }

    /// sd binds to SCSI device `hctl`: block device `name` with `dev` = `devnum`
    /// (`8:16`), `size`, empty `holders/`, and `/sys/block/<name>`.
    pub fn add_block(&self, hctl: Hctl, name: &str, devnum: &str) {
        let sd = self.scsi_dir(hctl);
        let block = sd.join("block").join(name);
        write(&block.join("dev"), &format!("{devnum}\n"));
        write(&block.join("size"), "2097152\n");
        fs::create_dir_all(block.join("holders")).expect("mkdir");
        symlink(&block.join("device"), &sd);
        symlink(&self.path(&format!("sys/block/{name}")), &block);
    }

    /// The device's `wwid` attribute (raw, as the kernel prints VPD 0x83:
    /// `naa.600a…`).
    pub fn set_wwid(&self, hctl: Hctl, raw: &str) {
        write(&self.scsi_dir(hctl).join("wwid"), &format!("{raw}\n"));
    }

    /// udev has processed block device `name`: database entry `run/udev/data/bM:m`,
    /// `/dev/<name>` and `dev/disk/<link>` symlinks to it.
    pub fn udev_add(&self, name: &str, devnum: &str, links: &[String]) {
        write(&self.path(&format!("run/udev/data/b{devnum}")), "");
        write(&self.path(&format!("dev/{name}")), "");
        for link in links {
            // udev points a link that several paths share at the last one (paths
            // processed at the same time replace it in turn).
            let at = self.path(&format!("dev/disk/{link}"));
            let to = self.path(&format!("dev/{name}"));
            fs::create_dir_all(at.parent().expect("link has a parent")).expect("mkdir");
            loop {
                remove(&at);
                match std::os::unix::fs::symlink(relative(&at, &to), &at) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    r => break r.expect("symlink"),
                }
            }
        }
    }

    /// A whole LUN as it looks once attached: SCSI device, block device, WWID, udev
    /// node, database entry and the usual by-id links (plus a by-path link).
    pub fn add_lun(&self, session: u32, hctl: Hctl, name: &str, devnum: &str, raw_wwid: &str) {
        self.add_scsi_device(session, hctl);
        self.add_block(hctl, name, devnum);
        self.set_wwid(hctl, raw_wwid);
        let mut links = by_id_links(raw_wwid);
        links.push(format!("by-path/ip-session{session}-lun-{}", hctl.lun));
        self.udev_add(name, devnum, &links);
    }

    /// Puts device-mapper device `dm` on top of `name` (`holders/dm-N`).
    pub fn add_holder(&self, name: &str, dm: &str) {
        write(&self.path(&format!("sys/block/{name}/holders/{dm}")), "");
    }

    fn dm_dir(&self, dm: &str) -> PathBuf {
        self.path(&format!("sys/devices/virtual/block/{dm}"))
    }

    fn block_dir(&self, name: &str) -> PathBuf {
        fs::canonicalize(self.path(&format!("sys/block/{name}")))
            .expect("no such block device in the fixture")
    }

    /// device-mapper creates `dm` (`dm-N`, `major:minor` `devnum`) over `paths`:
    /// `sys/devices/virtual/block/dm-N/{dev,size,dm/name,dm/uuid,holders/,slaves/}`
    /// (`dm/uuid` only when `uuid` is given), `/sys/block/dm-N`, each path's
    /// `holders/dm-N` and the map's `slaves/<path>` links. udev is not done with it
    /// yet (see [`Tree::udev_add_dm`]).
    pub fn add_dm(&self, dm: &str, devnum: &str, name: &str, uuid: Option<&str>, paths: &[&str]) {
        let dir = self.dm_dir(dm);
        write(&dir.join("dev"), &format!("{devnum}\n"));
        write(&dir.join("size"), "2097152\n");
        write(&dir.join("dm/name"), &format!("{name}\n"));
        if let Some(uuid) = uuid {
            write(&dir.join("dm/uuid"), &format!("{uuid}\n"));
        }
        fs::create_dir_all(dir.join("holders")).expect("mkdir");
        fs::create_dir_all(dir.join("slaves")).expect("mkdir");
        symlink(&self.path(&format!("sys/block/{dm}")), &dir);
        for p in paths {
            self.add_slave(dm, p);
        }
    }

    /// A multipath map `dm` named `name` over `paths` for WWID `wwid` (uuid
    /// `mpath-<wwid>`), processed by udev (database entry, `/dev/dm-N`,
    /// `/dev/mapper/<name>`).
    pub fn add_multipath_map(
        &self,
        dm: &str,
        devnum: &str,
        name: &str,
        wwid: &str,
        paths: &[&str],
    ) {
        self.add_dm(dm, devnum, name, Some(&format!("mpath-{wwid}")), paths);
        self.udev_add_dm(dm, devnum, name);
    }

    /// udev has processed map `dm`: database entry, `/dev/dm-N`, `/dev/mapper/<name>`.
    pub fn udev_add_dm(&self, dm: &str, devnum: &str, name: &str) {
        write(&self.path(&format!("run/udev/data/b{devnum}")), "");
        write(&self.path(&format!("dev/{dm}")), "");
        symlink(
            &self.path(&format!("dev/mapper/{name}")),
            &self.path(&format!("dev/{dm}")),
        );
    }

    /// The map's table gains path `name`: `slaves/<name>` and `<name>/holders/dm-N`.
    pub fn add_slave(&self, dm: &str, name: &str) {
        let block = self.block_dir(name);
        let dir = self.dm_dir(dm);
        symlink(&dir.join("slaves").join(name), &block);
        symlink(&block.join("holders").join(dm), &dir);
    }

    /// The map's table loses path `name` (`multipathd del path`).
    pub fn remove_slave(&self, dm: &str, name: &str) {
        remove(&self.dm_dir(dm).join("slaves").join(name));
        if let Ok(block) = fs::canonicalize(self.path(&format!("sys/block/{name}"))) {
            remove(&block.join("holders").join(dm));
        }
    }

    /// The slaves of map `dm` (`slaves/`), sorted.
    pub fn slaves(&self, dm: &str) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(self.dm_dir(dm).join("slaves"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// device-mapper removes map `dm` (`multipath -f`) and udev follows: the
    /// holder links of its paths, the map's directories, its udev entries.
    pub fn remove_dm(&self, dm: &str) {
        for name in self.slaves(dm) {
            self.remove_slave(dm, &name);
        }
        let dir = self.dm_dir(dm);
        let devnum = fs::read_to_string(dir.join("dev"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let name = fs::read_to_string(dir.join("dm/name"))
            .unwrap_or_default()
            .trim()
            .to_string();
        remove(&dir);
        self.remove(&format!("sys/block/{dm}"));
        self.remove(&format!("run/udev/data/b{devnum}"));
        self.remove(&format!("dev/{dm}"));
        if !name.is_empty() {
            self.remove(&format!("dev/mapper/{name}"));
        }
    }

    /// The kernel removes SCSI device `hctl` (`echo 1 > delete`, or logout): the
    /// device directory, `/sys/block/<name>` and the bus link. Returns the block
    /// device name and `major:minor` it had, for [`Tree::udev_remove`].
    pub fn remove_lun(&self, hctl: Hctl) -> Option<(String, String)> {
        let bus = self.path(&format!("sys/bus/scsi/devices/{hctl}"));
        let sd = fs::canonicalize(&bus).ok()?;
        let block = fs::read_dir(sd.join("block"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned());
        let mut out = None;
        if let Some(name) = block {
            let devnum = fs::read_to_string(sd.join("block").join(&name).join("dev"))
                .unwrap_or_default()
                .trim()
                .to_string();
            self.remove(&format!("sys/block/{name}"));
            out = Some((name, devnum));
        }
        remove(&bus);
        remove(&sd);
        out
    }

    /// udev processes the removal of `name`: `/dev/<name>`, its database entry and
    /// every `dev/disk/by-*` link pointing at it.
    pub fn udev_remove(&self, name: &str, devnum: &str) {
        self.remove(&format!("dev/{name}"));
        self.remove(&format!("run/udev/data/b{devnum}"));
        for link in self.links_to(name) {
            remove(&link);
        }
    }

    /// Every `dev/disk/by-*/*` link that points at `name`.
    pub fn links_to(&self, name: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(kinds) = fs::read_dir(self.path("dev/disk")) else {
            return out;
        };
        for kind in kinds.filter_map(Result::ok) {
            let Ok(entries) = fs::read_dir(kind.path()) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let target = fs::read_link(e.path()).ok();
                if target.as_deref().and_then(Path::file_name) == Some(name.as_ref()) {
                    out.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    /// Every path in the tree with its link target or file content, sorted: compare
    /// two snapshots to prove nothing changed.
    pub fn snapshot(&self) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for e in entries.filter_map(Result::ok) {
                let p = e.path();
                let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                let meta = fs::symlink_metadata(&p).expect("stat");
                if meta.file_type().is_symlink() {
                    let to = fs::read_link(&p).expect("readlink");
                    out.push(format!("{rel} -> {}", to.display()));
                } else if meta.is_dir() {
                    out.push(format!("{rel}/"));
                    walk(root, &p, out);
                } else {
                    let text = fs::read_to_string(&p).unwrap_or_default();
                    out.push(format!("{rel} = {text:?}"));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::scsi;
    use crate::host::udev::{removal_leftovers, udev_initialized};

    const RAW: &str = "naa.600a09803830447a4f244c4657616f6f";

    #[test]
    fn tree_reads_back_through_the_sysfs_readers() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tree::new(dir.path());
        let p = t.paths();
        t.add_session(4, 6, "iqn.2010-10.org.openstack:v1", "192.0.2.10", 3260, 2);
        assert_eq!(scsi::session_host(&p, 4).unwrap(), Some(6));
        assert_eq!(scsi::session_targets(&p, 4).unwrap(), Some(vec![]));
        let h: Hctl = "6:0:2:1".parse().unwrap();
        t.add_lun(4, h, "sdb", "8:16", RAW);
        assert_eq!(scsi::session_targets(&p, 4).unwrap().unwrap().len(), 1);
        assert_eq!(
            scsi::device_name_by_hctl(&p, 4, h).unwrap().as_deref(),
            Some("sdb")
        );
        let devs = scsi::session_devices(&p, 4).unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!(
            devs[0].wwid.as_deref(),
            Some("3600a09803830447a4f244c4657616f6f")
        );
        assert!(udev_initialized(&p, "sdb").unwrap());
        assert_eq!(removal_leftovers(&p, "sdb").unwrap().len(), 5);
        let (name, devnum) = t.remove_lun(h).unwrap();
        assert_eq!((name.as_str(), devnum.as_str()), ("sdb", "8:16"));
        assert!(scsi::session_devices(&p, 4).unwrap().is_empty());
        t.udev_remove(&name, &devnum);
        assert!(removal_leftovers(&p, "sdb").unwrap().is_empty());
        t.remove_session(4);
        assert_eq!(scsi::session_host(&p, 4).unwrap(), None);
        assert!(!t.exists("sys/class/scsi_host/host6"));
    }

    #[test]
    fn multipath_map_reads_back_through_the_sysfs_readers() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tree::new(dir.path());
        let p = t.paths();
        t.add_session(1, 3, "iqn.2010-10.org.openstack:v1", "192.0.2.10", 3260, 0);
        t.add_session(2, 4, "iqn.2010-10.org.openstack:v1", "192.0.2.11", 3260, 0);
        t.add_lun(1, "3:0:0:1".parse().unwrap(), "sdb", "8:16", RAW);
        t.add_lun(2, "4:0:0:1".parse().unwrap(), "sdc", "8:32", RAW);
        let wwid = "3600a09803830447a4f244c4657616f6f";
        t.add_multipath_map("dm-0", "253:0", "mpatha", wwid, &["sdb"]);
        assert_eq!(scsi::holders(&p, "sdb").unwrap(), ["dm-0"]);
        assert!(scsi::holders(&p, "sdc").unwrap().is_empty());
        assert_eq!(
            scsi::dm_multipath_wwid(&p, "dm-0").unwrap().as_deref(),
            Some(wwid)
        );
        assert_eq!(
            scsi::dm_name(&p, "dm-0").unwrap().as_deref(),
            Some("mpatha")
        );
        assert!(udev_initialized(&p, "dm-0").unwrap());
        t.add_slave("dm-0", "sdc");
        assert_eq!(t.slaves("dm-0"), ["sdb", "sdc"]);
        assert_eq!(scsi::holders(&p, "sdc").unwrap(), ["dm-0"]);
        t.remove_slave("dm-0", "sdb");
        assert!(scsi::holders(&p, "sdb").unwrap().is_empty());
        t.remove_dm("dm-0");
        assert_eq!(scsi::dm_uuid(&p, "dm-0").unwrap(), None);
        assert!(scsi::holders(&p, "sdc").unwrap().is_empty());
        assert!(!t.exists("dev/mapper/mpatha") && !t.exists("run/udev/data/b253:0"));
        // A dm device that is not a multipath map.
        t.add_dm("dm-1", "253:1", "vg-lv", Some("LVM-abc"), &["sdb"]);
        assert_eq!(scsi::dm_multipath_wwid(&p, "dm-1").unwrap(), None);
        assert!(!udev_initialized(&p, "dm-1").unwrap());
    }
}
