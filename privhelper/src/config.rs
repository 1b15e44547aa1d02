//! moord's settings: `/etc/moor/moord.toml` (root-owned, not group/other-writable,
//! unknown keys refused), overridden by command-line flags.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ops::OPS;

pub const DEFAULT_CONFIG: &str = "/etc/moor/moord.toml";
pub const DEFAULT_SOCKET: &str = "/run/moor/moord.sock";

/// Capabilities moord keeps (and so the tools it runs get): see docs/security.md.
pub const DEFAULT_KEEP_CAPS: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_SYS_RAWIO",
    "CAP_IPC_LOCK",
    "CAP_MKNOD",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_SYS_PTRACE",
];

/// The file, as written. Every field optional; flags and defaults fill the rest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub socket: Option<PathBuf>,
    /// Octal mode of the socket file, e.g. "0660".
    pub socket_mode: Option<String>,
    /// Group that owns the socket file: a name or a number.
    pub socket_group: Option<NameOrId>,
    pub filters_path: Option<Vec<PathBuf>>,
    pub exec_dirs: Option<Vec<PathBuf>>,
    pub key_file: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
    #[serde(default)]
    pub allow_uids: Vec<u32>,
    #[serde(default)]
    pub allow_gids: Vec<u32>,
    /// Groups allowed to connect, by name (resolved at load).
    #[serde(default)]
    pub allow_groups: Vec<String>,
    /// Users allowed to connect, by name (resolved at load).
    #[serde(default)]
    pub allow_users: Vec<String>,
    pub max_concurrent_ops: Option<usize>,
    pub max_queued_ops: Option<usize>,
    pub max_connections: Option<usize>,
    pub op_timeout_secs: Option<u64>,
    pub max_op_timeout_secs: Option<u64>,
    pub output_limit_bytes: Option<usize>,
    pub handshake_timeout_ms: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub write_timeout_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    pub keep_capabilities: Option<Vec<String>>,
    /// Prefix under which moord resolves every path it touches itself (sysfs
    /// writes, identity guards, `file.read`, iSCSI record edits). For tests and
    /// containers; "/" on a host.
    pub host_root: Option<PathBuf>,
    /// open-iscsi's database, as a host path (resolved under `host_root`).
    pub iscsi_db_dir: Option<PathBuf>,
    /// Where moord writes its metrics for node_exporter's textfile collector
    /// (absolute path of a `.prom` file; not resolved under `host_root`). Unset:
    /// no textfile (the `metrics` operation still answers).
    pub metrics_textfile: Option<PathBuf>,
    /// How often the textfile is rewritten, in seconds (default 15).
    pub metrics_interval_secs: Option<u64>,
    #[serde(default)]
    pub policy: Vec<PolicyEntry>,
}

/// A group or user given by name or number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum NameOrId {
    Id(u32),
    Name(String),
}

/// Who may run which operations. A caller matches when its uid is `uid` (or the
/// user named `user`) or one of its groups (primary or supplementary, as the kernel
/// reports them) is `gid` (or the group named `group`). Names are resolved at load.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Operation names, or a family ending in `.*` (`iscsi.*` is every operation
    /// whose name starts with `iscsi.`). A bare `*` is refused.
    pub ops: Vec<String>,
}

fn gid_of(name: &str) -> Result<u32, ConfigError> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| ConfigError::Invalid(format!("no group named {name:?}")))
}

fn uid_of(name: &str) -> Result<u32, ConfigError> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
        .ok_or_else(|| ConfigError::Invalid(format!("no user named {name:?}")))
}

/// The effective settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub socket_mode: u32,
    pub socket_group: Option<u32>,
    pub filters_path: Vec<PathBuf>,
    pub exec_dirs: Vec<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
    pub allow_uids: BTreeSet<u32>,
    pub allow_gids: BTreeSet<u32>,
    pub max_concurrent_ops: usize,
    pub max_queued_ops: usize,
    pub max_connections: usize,
    pub op_timeout_secs: u64,
    pub max_op_timeout_secs: u64,
    pub output_limit_bytes: usize,
    pub handshake_timeout_ms: u64,
    pub idle_timeout_secs: u64,
    /// A client that takes longer than this to accept a frame is disconnected.
    pub write_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    pub keep_capabilities: Vec<String>,
    pub policy: Vec<PolicyEntry>,
    /// Where the host's file system is (`/`, or a fixture tree in tests): every
    /// path moord opens itself is this prefix + the canonical host path. The
    /// filters always see the canonical host path.
    pub host_root: PathBuf,
    /// open-iscsi's database directory as a canonical host path (`/etc/iscsi`).
    pub iscsi_db_dir: String,
    /// The metrics textfile (written atomically every `metrics_interval_secs` and
    /// at shutdown), if any.
    pub metrics_textfile: Option<PathBuf>,
    /// Seconds between two textfile writes (at least 1).
    pub metrics_interval_secs: u64,
    /// The uid that must own the config, filter files and key file (0 in production).
    pub trusted_owner: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Command-line overrides (the daemon's flags).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub socket: Option<PathBuf>,
    pub filters_path: Option<Vec<PathBuf>>,
    pub exec_dirs: Option<Vec<PathBuf>>,
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
    pub key_file: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
    pub grants: Vec<PolicyEntry>,
    pub trusted_owner: Option<u32>,
    pub host_root: Option<PathBuf>,
}

/// Refuse a file that someone other than the trusted owner could have written.
pub fn check_trusted_file(path: &Path, trusted_owner: u32) -> Result<(), ConfigError> {
    let m = std::fs::metadata(path).map_err(|e| ConfigError::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    if m.uid() != trusted_owner {
        return Err(ConfigError::File {
            path: path.into(),
            message: format!(
                "owned by uid {}, must be owned by uid {trusted_owner}",
                m.uid()
            ),
        });
    }
    if m.mode() & 0o022 != 0 {
        return Err(ConfigError::File {
            path: path.into(),
            message: format!(
                "mode {:04o} is writable by group or others",
                m.mode() & 0o7777
            ),
        });
    }
    Ok(())
}

/// Parse a grant flag: `uid:N=op,op` or `gid:N=op,op` (`family.*` for a family).
pub fn parse_grant(s: &str) -> Result<PolicyEntry, String> {
    let (who, ops) = s.split_once('=').ok_or("expected uid:N=ops or gid:N=ops")?;
    let (kind, id) = who.split_once(':').ok_or("expected uid:N or gid:N")?;
    let id: u32 = id.parse().map_err(|_| format!("{id:?} is not a number"))?;
    let ops: Vec<String> = ops
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    match kind {
        "uid" => Ok(PolicyEntry {
            uid: Some(id),
            gid: None,
            user: None,
            group: None,
            ops,
        }),
        "gid" => Ok(PolicyEntry {
            uid: None,
            gid: Some(id),
            user: None,
            group: None,
            ops,
        }),
        _ => Err(format!("{kind:?} is neither uid nor gid")),
    }
}

impl Config {
    /// Build the effective settings from the file (if any) and the flags.
    pub fn load(file: Option<&Path>, ov: &Overrides) -> Result<Config, ConfigError> {
        let trusted_owner = ov.trusted_owner.unwrap_or(0);
        let fc = match file {
            Some(path) => {
                check_trusted_file(path, trusted_owner)?;
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.into(),
                    message: e.to_string(),
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::File {
                    path: path.into(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let socket_mode = match &fc.socket_mode {
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| {
                    ConfigError::Invalid(format!("socket_mode {m:?} is not an octal mode"))
                })?,
            None => 0o660,
        };
        let mut policy = fc.policy;
        policy.extend(ov.grants.iter().cloned());
        for p in &mut policy {
            let named = [
                p.uid.is_some(),
                p.gid.is_some(),
                p.user.is_some(),
                p.group.is_some(),
            ];
            if named.iter().filter(|x| **x).count() != 1 {
                return Err(ConfigError::Invalid(
                    "each policy entry names exactly one of uid, gid, user or group".into(),
                ));
            }
            if let Some(u) = p.user.take() {
                p.uid = Some(uid_of(&u)?);
            }
            if let Some(g) = p.group.take() {
                p.gid = Some(gid_of(&g)?);
            }
            for op in &p.ops {
                check_policy_op(op)?;
            }
        }
        let filters_path = ov
            .filters_path
            .clone()
            .or(fc.filters_path)
            .unwrap_or_else(|| vec!["/etc/moor/filters.d".into()]);
        let exec_dirs = ov.exec_dirs.clone().or(fc.exec_dirs).unwrap_or_else(|| {
            moor_filters::config::DEFAULT_EXEC_DIRS
                .iter()
                .map(PathBuf::from)
                .collect()
        });
        for d in filters_path.iter().chain(&exec_dirs) {
            if !d.is_absolute() {
                return Err(ConfigError::Invalid(format!(
                    "{} is not an absolute path",
                    d.display()
                )));
            }
        }
        let mut allow_uids: BTreeSet<u32> = fc.allow_uids.into_iter().collect();
        allow_uids.extend(&ov.allow_uids);
        for u in &fc.allow_users {
            allow_uids.insert(uid_of(u)?);
        }
        let mut allow_gids: BTreeSet<u32> = fc.allow_gids.into_iter().collect();
        allow_gids.extend(&ov.allow_gids);
        for g in &fc.allow_groups {
            allow_gids.insert(gid_of(g)?);
        }
        let socket_group = match fc.socket_group {
            Some(NameOrId::Id(g)) => Some(g),
            Some(NameOrId::Name(n)) => Some(gid_of(&n)?),
            None => None,
        };
        let keep_capabilities = fc
            .keep_capabilities
            .unwrap_or_else(|| DEFAULT_KEEP_CAPS.iter().map(|s| s.to_string()).collect());
        let host_root = ov
            .host_root
            .clone()
            .or(fc.host_root)
            .unwrap_or_else(|| "/".into());
        if !host_root.is_absolute() || !host_root.is_dir() {
            return Err(ConfigError::Invalid(format!(
                "host_root {} is not an absolute path to a directory",
                host_root.display()
            )));
        }
        let iscsi_db_dir = fc.iscsi_db_dir.unwrap_or_else(|| "/etc/iscsi".into());
        let iscsi_db_dir = iscsi_db_dir
            .to_str()
            .filter(|d| crate::ops::is_canonical_path(d) && *d != "/")
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "iscsi_db_dir {} is not an absolute, canonical path",
                    iscsi_db_dir.display()
                ))
            })?
            .to_string();
        let metrics_textfile = fc.metrics_textfile;
        if let Some(p) = &metrics_textfile
            && (!p.is_absolute()
                || p.file_name().is_none()
                || p.to_str().is_none_or(|s| s.ends_with('/')))
        {
            return Err(ConfigError::Invalid(format!(
                "metrics_textfile {} is not an absolute path to a file",
                p.display()
            )));
        }
        let cfg = Config {
            socket: ov
                .socket
                .clone()
                .or(fc.socket)
                .unwrap_or_else(|| DEFAULT_SOCKET.into()),
            socket_mode,
            socket_group,
            filters_path,
            exec_dirs,
            key_file: ov.key_file.clone().or(fc.key_file),
            audit_log: ov.audit_log.clone().or(fc.audit_log),
            allow_uids,
            allow_gids,
            max_concurrent_ops: fc.max_concurrent_ops.unwrap_or(16).max(1),
            max_queued_ops: fc.max_queued_ops.unwrap_or(1024),
            max_connections: fc.max_connections.unwrap_or(4096).max(1),
            op_timeout_secs: fc.op_timeout_secs.unwrap_or(300),
            max_op_timeout_secs: fc.max_op_timeout_secs.unwrap_or(3600),
            output_limit_bytes: fc.output_limit_bytes.unwrap_or(16 << 20),
            handshake_timeout_ms: fc.handshake_timeout_ms.unwrap_or(5000),
            idle_timeout_secs: fc.idle_timeout_secs.unwrap_or(600),
            write_timeout_secs: fc.write_timeout_secs.unwrap_or(30).max(1),
            shutdown_grace_secs: fc.shutdown_grace_secs.unwrap_or(30),
            keep_capabilities,
            policy,
            host_root,
            iscsi_db_dir,
            metrics_textfile,
            metrics_interval_secs: fc.metrics_interval_secs.unwrap_or(15).max(1),
            trusted_owner,
        };
        Ok(cfg)
    }

    /// The operations a caller may run.
    pub fn ops_for(&self, uid: u32, groups: &[u32]) -> BTreeSet<String> {
        let mut ops = BTreeSet::new();
        for p in &self.policy {
            let hit = p.uid == Some(uid) || p.gid.is_some_and(|g| groups.contains(&g));
            if hit {
                for op in &p.ops {
                    match family_prefix(op) {
                        Some(prefix) => ops.extend(
                            OPS.iter()
                                .filter(|e| e.name.starts_with(prefix))
                                .map(|e| e.name.to_string()),
                        ),
                        None => {
                            ops.insert(op.clone());
                        }
                    }
                }
            }
        }
        ops
    }

    /// Where moord finds the canonical host path `canonical` (absolute) on its own
    /// file system: under [`Config::host_root`].
    pub fn host_path(&self, canonical: &str) -> PathBuf {
        host_path(&self.host_root, canonical)
    }

    /// May this caller connect at all?
    pub fn may_connect(&self, uid: u32, groups: &[u32]) -> bool {
        self.allow_uids.contains(&uid) || groups.iter().any(|g| self.allow_gids.contains(g))
    }
}

/// `root` + the canonical absolute path `canonical`.
pub fn host_path(root: &Path, canonical: &str) -> PathBuf {
    let rel = canonical.trim_start_matches('/');
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// `iscsi.*` → `Some("iscsi.")`; anything else `None`.
fn family_prefix(op: &str) -> Option<&str> {
    op.strip_suffix('*').filter(|p| p.ends_with('.'))
}

/// A policy entry's operation: a known name, or a family (`iscsi.*`) that names at
/// least one known operation. A bare `*` would grant every operation moord will
/// ever have (including `exec`), so it is refused.
fn check_policy_op(op: &str) -> Result<(), ConfigError> {
    if op == "*" {
        return Err(ConfigError::Invalid(
            "policy op \"*\" is not allowed: list the operations, or families such as \"iscsi.*\""
                .into(),
        ));
    }
    let known = match family_prefix(op) {
        Some(prefix) => prefix.len() > 1 && OPS.iter().any(|e| e.name.starts_with(prefix)),
        None => OPS.iter().any(|e| e.name == op),
    };
    if known {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "policy names unknown operation {op:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_flags_merge() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("moord.toml");
        std::fs::write(
            &p,
            "socket = \"/run/x.sock\"\nallow_gids = [990]\nallow_groups = [\"root\"]\nsocket_group = \"root\"\nsocket_mode = \"0660\"\n[[policy]]\ngid = 990\nops = [\"ping\", \"sysfs.write\"]\n[[policy]]\ngroup = \"root\"\nops = [\"ping\"]\n",
        )
        .unwrap();
        let me = std::fs::metadata(&p).unwrap().uid();
        let ov = Overrides {
            allow_uids: vec![1001],
            grants: vec![parse_grant("uid:1001=exec").unwrap()],
            trusted_owner: Some(me),
            ..Overrides::default()
        };
        let c = Config::load(Some(&p), &ov).unwrap();
        assert_eq!(c.socket, PathBuf::from("/run/x.sock"));
        assert!(c.may_connect(1001, &[1001]));
        assert!(c.may_connect(5, &[5, 990]));
        assert!(!c.may_connect(5, &[5]));
        assert_eq!(
            c.ops_for(1001, &[990]).into_iter().collect::<Vec<_>>(),
            ["exec", "ping", "sysfs.write"]
        );
        assert!(c.ops_for(7, &[7]).is_empty());
        assert!(c.may_connect(7, &[7, 0]), "allow_groups by name");
        assert_eq!(c.socket_group, Some(0));
        assert_eq!(c.ops_for(7, &[0]).into_iter().collect::<Vec<_>>(), ["ping"]);
    }

    #[test]
    fn bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("moord.toml");
        std::fs::write(&p, "sokcet = \"/x\"\n").unwrap();
        let me = std::fs::metadata(&p).unwrap().uid();
        let ov = Overrides {
            trusted_owner: Some(me),
            ..Overrides::default()
        };
        assert!(Config::load(Some(&p), &ov).is_err(), "unknown key");
        std::fs::write(&p, "[[policy]]\nuid = 1\nops = [\"rm\"]\n").unwrap();
        assert!(Config::load(Some(&p), &ov).is_err(), "unknown op");
        std::fs::write(&p, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(Config::load(Some(&p), &ov).is_err(), "writable");
        for bad in ["*", "nope.*", ".*", "iscsi*", "iscsi.node_*"] {
            std::fs::write(&p, format!("[[policy]]\nuid = 1\nops = [\"{bad}\"]\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(Config::load(Some(&p), &ov).is_err(), "policy op {bad:?}");
        }
        assert!(
            Config::load(
                None,
                &Overrides {
                    host_root: Some("relative".into()),
                    ..Overrides::default()
                }
            )
            .is_err()
        );
        for bad in ["\"relative.prom\"", "\"/run/moor/metrics/\"", "\"/\""] {
            std::fs::write(&p, format!("metrics_textfile = {bad}\n")).unwrap();
            assert!(
                Config::load(Some(&p), &ov).is_err(),
                "metrics_textfile {bad}"
            );
        }
        assert!(parse_grant("uid:x=ping").is_err());
        assert!(parse_grant("user:1=ping").is_err());
    }

    #[test]
    fn op_families_expand_to_known_operations() {
        let ov = Overrides {
            grants: vec![parse_grant("uid:5=ping,iscsi.*,block.*").unwrap()],
            ..Overrides::default()
        };
        let c = Config::load(None, &ov).unwrap();
        let ops = c.ops_for(5, &[5]);
        assert!(ops.contains("ping") && ops.contains("block.flush"));
        assert!(ops.contains("iscsi.login") && ops.contains("iscsi.node_secret"));
        assert!(
            !ops.contains("exec") && !ops.contains("scsi.delete"),
            "{ops:?}"
        );
        assert!(ops.iter().all(|o| OPS.iter().any(|e| e.name == o)));
        assert_eq!(c.host_root, PathBuf::from("/"));
        assert_eq!(c.iscsi_db_dir, "/etc/iscsi");
        assert_eq!(c.metrics_textfile, None);
        assert_eq!(c.metrics_interval_secs, 15);
        assert_eq!(
            c.host_path("/sys/block/sda"),
            PathBuf::from("/sys/block/sda")
        );
        assert_eq!(
            host_path(Path::new("/tmp/root"), "/sys/block/sda"),
            PathBuf::from("/tmp/root/sys/block/sda")
        );
    }
}
