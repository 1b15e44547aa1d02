//! Access to the host's kernel interfaces (sysfs, `/dev`, `/etc`, `/proc`, `/run`)
//! through a root prefix, so every reader can be pointed at a fixture tree in tests.
//!
//! [`HostPaths`] is a plain value, not a trait: production code uses
//! [`HostPaths::system`] (root `/`), tests use [`HostPaths::under`] with a directory
//! from `connector/testdata/`. Every path the readers touch is built by
//! [`HostPaths::sys`], [`HostPaths::dev`], [`HostPaths::etc`], [`HostPaths::proc`] or
//! [`HostPaths::run`].
//!
//! Waiting for devices to appear or go away is event-driven, see [`udev`].

#[cfg(test)]
pub(crate) mod fixture;
pub mod scsi;
pub mod udev;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A failure reading the host, always naming the path involved.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("listing {}: {source}", path.display())]
    List { path: PathBuf, source: io::Error },
    #[error("resolving {}: {source}", path.display())]
    Resolve { path: PathBuf, source: io::Error },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("invalid path component {value:?}: {reason}")]
    Component { value: String, reason: &'static str },
    /// The udev event monitor (netlink socket) failed.
    #[error("udev monitor: {action}: {source}")]
    Monitor {
        action: &'static str,
        source: io::Error,
    },
}

/// The root under which the host's `/sys`, `/dev`, `/etc`, `/proc` and `/run` are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    root: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self::system()
    }
}

impl HostPaths {
    /// The running system (root `/`).
    pub fn system() -> Self {
        Self {
            root: PathBuf::from("/"),
        }
    }

    /// A tree rooted at `dir` (e.g. a fixture holding `sys/`, `dev/`, ...).
    pub fn under(dir: impl Into<PathBuf>) -> Self {
        Self { root: dir.into() }
    }

    /// The root prefix.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn join(&self, top: &str, rel: &str) -> PathBuf {
        let mut path = self.root.join(top);
        let rel = rel.trim_start_matches('/');
        if !rel.is_empty() {
            path.push(rel);
        }
        path
    }

    /// `<root>/sys/<rel>` (a leading `/` in `rel` is ignored).
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.join("sys", rel)
    }

    /// `<root>/dev/<rel>`.
    pub fn dev(&self, rel: &str) -> PathBuf {
        self.join("dev", rel)
    }

    /// `<root>/etc/<rel>`.
    pub fn etc(&self, rel: &str) -> PathBuf {
        self.join("etc", rel)
    }

    /// `<root>/proc/<rel>`.
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.join("proc", rel)
    }

    /// `<root>/run/<rel>` (udev's database lives in `/run/udev/data`).
    pub fn run(&self, rel: &str) -> PathBuf {
        self.join("run", rel)
    }

    /// Reads a sysfs-style attribute with its trailing newline(s) removed.
    /// `Ok(None)` if the file does not exist (or a directory on its path is missing),
    /// or answers ENODEV: sysfs does that for an attribute of an object being
    /// removed right now (a session another detach is logging out), which is absence.
    pub fn read_attr(&self, path: &Path) -> Result<Option<String>, HostError> {
        match fs::read_to_string(path) {
            Ok(text) => Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned())),
            Err(e) if is_absent(&e) || is_being_removed(&e) => Ok(None),
            Err(source) => Err(HostError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The entry names of a directory, sorted; `Ok(None)` if it does not exist.
    /// Names that are not UTF-8 are skipped (kernel object names are ASCII).
    pub fn list_dir(&self, path: &Path) -> Result<Option<Vec<String>>, HostError> {
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            // A missing directory is absence, even if it appears right after (sysfs
            // creates it while we look: "not yet"). A file on the way is not (that
            // would be a wrong path, not a device that went away).
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if is_absent(&e) && !path.exists() => return Ok(None),
            Err(source) => {
                return Err(HostError::List {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                // The directory went away while being read (a device removed).
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(source) => {
                    return Err(HostError::List {
                        path: path.to_owned(),
                        source,
                    });
                }
            };
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(Some(names))
    }

    /// Like [`Self::list_dir`], keeping names that start with `prefix`; an absent
    /// directory gives an empty list.
    pub fn list_prefixed(&self, path: &Path, prefix: &str) -> Result<Vec<String>, HostError> {
        Ok(self
            .list_dir(path)?
            .unwrap_or_default()
            .into_iter()
            .filter(|name| name.starts_with(prefix))
            .collect())
    }

    /// Resolves every symlink in `path` (sysfs links are relative, so they stay
    /// inside the root). `Ok(None)` if it does not exist.
    pub fn resolve(&self, path: &Path) -> Result<Option<PathBuf>, HostError> {
        match fs::canonicalize(path) {
            Ok(real) => Ok(Some(real)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(source) => Err(HostError::Resolve {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

fn is_being_removed(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::errno::Errno::ENODEV as i32)
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Checks that `value` is a single, plain path component (a kernel object name such
/// as `sda` or `dm-0`), so it cannot walk out of the directory it is joined to.
pub fn component(value: &str) -> Result<&str, HostError> {
    let reason = if value.is_empty() {
        "empty"
    } else if value == "." || value == ".." {
        "relative reference"
    } else if value.contains('/') {
        "contains '/'"
    } else if value.contains('\0') {
        "contains NUL"
    } else {
        return Ok(value);
    };
    Err(HostError::Component {
        value: value.to_owned(),
        reason,
    })
}

#[cfg(test)]
pub(crate) fn fixture(name: &str) -> HostPaths {
    HostPaths::under(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_paths_are_absolute_under_slash() {
        let h = HostPaths::system();
        assert_eq!(
            h.sys("block/sda/size"),
            PathBuf::from("/sys/block/sda/size")
        );
        assert_eq!(h.dev("/disk/by-path"), PathBuf::from("/dev/disk/by-path"));
        assert_eq!(
            h.etc("iscsi/initiatorname.iscsi"),
            PathBuf::from("/etc/iscsi/initiatorname.iscsi")
        );
        assert_eq!(h.proc("mounts"), PathBuf::from("/proc/mounts"));
        assert_eq!(
            h.run("/udev/data/b8:16"),
            PathBuf::from("/run/udev/data/b8:16")
        );
        assert_eq!(h.sys(""), PathBuf::from("/sys"));
        assert_eq!(HostPaths::default(), h);
    }

    #[test]
    fn under_prefixes_every_tree() {
        let h = HostPaths::under("/tmp/fx");
        assert_eq!(h.root(), Path::new("/tmp/fx"));
        assert_eq!(
            h.sys("/class/scsi_host"),
            PathBuf::from("/tmp/fx/sys/class/scsi_host")
        );
        assert_eq!(h.dev("sda"), PathBuf::from("/tmp/fx/dev/sda"));
        assert_eq!(
            h.etc("multipath.conf"),
            PathBuf::from("/tmp/fx/etc/multipath.conf")
        );
        assert_eq!(
            h.proc("self/mounts"),
            PathBuf::from("/tmp/fx/proc/self/mounts")
        );
        assert_eq!(
            h.run("udev/data/b8:16"),
            PathBuf::from("/tmp/fx/run/udev/data/b8:16")
        );
    }

    #[test]
    fn read_attr_trims_newline_and_reports_absence() {
        let h = fixture("sysfs-iscsi-two-sessions");
        assert_eq!(
            h.read_attr(&h.sys("block/dm-0/dm/name"))
                .unwrap()
                .as_deref(),
            Some("3600a09803830447a4f244c4657616f6f")
        );
        assert_eq!(
            h.read_attr(&h.etc("iscsi/initiatorname.iscsi"))
                .unwrap()
                .as_deref(),
            Some("InitiatorName=iqn.1994-05.com.redhat:moor-test")
        );
        assert_eq!(h.read_attr(&h.sys("block/sdz/size")).unwrap(), None);
        // A file used as a directory is "absent" too.
        assert_eq!(h.read_attr(&h.sys("block/sda/size/x")).unwrap(), None);
    }

    #[test]
    fn enodev_is_an_object_being_removed_and_other_errors_are_not() {
        let enodev = io::Error::from_raw_os_error(nix::errno::Errno::ENODEV as i32);
        assert!(is_being_removed(&enodev));
        let enotconn = io::Error::from_raw_os_error(nix::errno::Errno::ENOTCONN as i32);
        assert!(!is_being_removed(&enotconn));
        assert!(!is_absent(&enotconn));
    }

    #[test]
    fn read_attr_on_directory_is_an_error_naming_the_path() {
        let h = fixture("sysfs-iscsi-two-sessions");
        let err = h.read_attr(&h.sys("block/sda")).unwrap_err();
        assert!(matches!(err, HostError::Read { .. }));
        assert!(err.to_string().contains("sys/block/sda"), "{err}");
    }

    #[test]
    fn list_dir_sorted_and_prefixed() {
        let h = fixture("sysfs-iscsi-two-sessions");
        assert_eq!(
            h.list_dir(&h.sys("block")).unwrap().unwrap(),
            ["dm-0", "sda", "sdb", "sdc", "sdd"]
        );
        assert_eq!(h.list_dir(&h.sys("nope")).unwrap(), None);
        assert_eq!(
            h.list_prefixed(&h.sys("class/scsi_host"), "host").unwrap(),
            ["host1", "host2"]
        );
        assert!(h.list_prefixed(&h.sys("nope"), "x").unwrap().is_empty());
        let err = h.list_dir(&h.sys("block/sda/size")).unwrap_err();
        assert!(err.to_string().contains("block/sda/size"), "{err}");
    }

    #[test]
    fn resolve_follows_relative_sysfs_links_inside_root() {
        let h = fixture("sysfs-iscsi-two-sessions");
        let real = h.resolve(&h.sys("block/sdd")).unwrap().unwrap();
        assert!(
            real.ends_with("sys/devices/platform/host2/session2/target2:2:7/2:2:7:256/block/sdd"),
            "{}",
            real.display()
        );
        assert_eq!(h.resolve(&h.sys("block/sdz")).unwrap(), None);
    }

    #[test]
    fn component_rejects_traversal() {
        assert_eq!(component("sda").unwrap(), "sda");
        for bad in ["", ".", "..", "../sda", "a/b", "a\0"] {
            assert!(component(bad).is_err(), "{bad:?}");
        }
    }
}
