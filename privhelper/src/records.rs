//! CHAP secrets into open-iscsi records, written by moord itself so that a secret
//! never appears in an argv (`iscsiadm … -n …password -v SECRET` would put it in
//! `/proc/PID/cmdline` for every user to read).
//!
//! open-iscsi's database (`/etc/iscsi` by default, `iscsi_db_dir`), as `idbm.c`
//! lays it out:
//!
//! * node record: `nodes/<iqn>/<addr>,<port>,<tpgt>/<iface>`, where `<addr>` is the
//!   IP address as given to or learnt by iscsiadm, IPv6 without brackets
//!   (`nodes/iqn…/fd00::1,3260,1/default`); one directory per target portal group;
//! * legacy node record (pre-780 tools, still read by iscsiadm):
//!   `nodes/<iqn>/<addr>,<port>` as a file;
//! * sendtargets discovery record: `send_targets/<addr>,<port>/st_config`, or the
//!   legacy `send_targets/<addr>,<port>` file.
//!
//! Records are `key = value` lines. iscsiadm derives `…password_length` from the
//! password when it reads the record, so only the password line is written.
//!
//! Edits never follow a symlink inside the database: every component below
//! `iscsi_db_dir` is checked with `symlink_metadata`, files are opened with
//! `O_NOFOLLOW`, and the new content goes to a temporary file (mode 0600, same
//! directory, `O_EXCL`) that is fsynced and renamed over the record.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use moor_types::PortalHost;
use zeroize::Zeroizing;

use crate::config::host_path;
use crate::ops::{IscsiRecord, RecordEntry, SecretText};

/// One record file: where the filters see it and where moord opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFile {
    /// The canonical host path (what the filters and the audit see).
    pub host_path: String,
    /// The same file under the host root.
    pub real: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No record for this target/portal/iface: nothing was changed.
    #[error("no open-iscsi {0}")]
    NotFound(String),
    /// A symlink or a file of the wrong type where the database has a directory or
    /// a record: refused, nothing was changed.
    #[error("{path}: {message}; refusing to edit")]
    Unsafe { path: String, message: String },
    /// The secret cannot be written as a record value.
    #[error("secret must be 1-255 bytes without control characters or surrounding spaces")]
    BadSecret,
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &str) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_string(),
        source,
    }
}

enum Kind {
    Dir,
    File,
    Symlink,
    Other,
    Missing,
}

fn kind(p: &Path) -> std::io::Result<Kind> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => Ok(Kind::Symlink),
        Ok(m) if m.is_dir() => Ok(Kind::Dir),
        Ok(m) if m.is_file() => Ok(Kind::File),
        Ok(_) => Ok(Kind::Other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Kind::Missing),
        Err(e) => Err(e),
    }
}

/// A directory of the database that must exist and be a real directory.
fn require_dir(root: &Path, canonical: &str, what: &str) -> Result<PathBuf, RecordError> {
    let real = host_path(root, canonical);
    match kind(&real).map_err(io_err(canonical))? {
        Kind::Dir => Ok(real),
        Kind::Missing => Err(RecordError::NotFound(format!(
            "{what} ({canonical} does not exist)"
        ))),
        Kind::Symlink => Err(RecordError::Unsafe {
            path: canonical.into(),
            message: "is a symlink".into(),
        }),
        _ => Err(RecordError::Unsafe {
            path: canonical.into(),
            message: "is not a directory".into(),
        }),
    }
}

/// `<addr>,<port>[,<tpgt>]` → (address, port, tpgt).
fn parse_portal_entry(name: &str) -> Option<(IpAddr, u16, Option<i64>)> {
    let mut parts = name.split(',');
    let addr = parts.next()?;
    let port = parts.next()?;
    let tpgt = parts.next();
    if parts.next().is_some() || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let ip: IpAddr = addr.parse().ok()?;
    let port: u16 = port.parse().ok()?;
    let tpgt = match tpgt {
        None => None,
        Some(t) => Some(t.parse::<i64>().ok()?),
    };
    Some((ip, port, tpgt))
}

/// Entries of `dir` (UTF-8 names only), sorted.
fn entries(dir: &Path, canonical: &str) -> Result<Vec<String>, RecordError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io_err(canonical))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// The record file(s) for `rec` in the database `db_dir` (a canonical host path)
/// under `root`. Several for a node reached through several portal groups (every
/// `<addr>,<port>,<tpgt>` directory with an `<iface>` record); never empty.
pub fn locate(
    root: &Path,
    db_dir: &str,
    rec: &IscsiRecord,
) -> Result<Vec<RecordFile>, RecordError> {
    let (portal, node) = match rec {
        IscsiRecord::Node { iqn, portal, iface } => (portal, Some((iqn, iface))),
        IscsiRecord::Discovery { portal } => (portal, None),
    };
    let PortalHost::Ip(ip) = portal.host() else {
        return Err(RecordError::NotFound(format!(
            "record for portal {portal}: records are kept by IP address"
        )));
    };
    let (ip, port) = (*ip, portal.port());
    let db_real = host_path(root, db_dir);
    if !db_real.is_dir() {
        return Err(RecordError::NotFound(format!(
            "database: {db_dir} is not a directory"
        )));
    }
    let mut found = Vec::new();
    let mut push = |canonical: String| {
        found.push(RecordFile {
            real: host_path(root, &canonical),
            host_path: canonical,
        })
    };
    let unsafe_entry = |path: String| RecordError::Unsafe {
        path,
        message: "is a symlink".into(),
    };
    let what;
    match node {
        Some((iqn, iface)) => {
            what = format!("node record for {iqn} at {portal} on iface {iface}");
            require_dir(root, &format!("{db_dir}/nodes"), &what)?;
            let target = format!("{db_dir}/nodes/{iqn}");
            let target_real = require_dir(root, &target, &what)?;
            for name in entries(&target_real, &target)? {
                let Some((eip, eport, tpgt)) = parse_portal_entry(&name) else {
                    continue;
                };
                if eip != ip || eport != port {
                    continue;
                }
                let entry = format!("{target}/{name}");
                match (
                    kind(&target_real.join(&name)).map_err(io_err(&entry))?,
                    tpgt,
                ) {
                    (Kind::Symlink, _) => return Err(unsafe_entry(entry)),
                    (Kind::Dir, Some(_)) => {
                        let file = format!("{entry}/{iface}");
                        match kind(&host_path(root, &file)).map_err(io_err(&file))? {
                            Kind::File => push(file),
                            Kind::Symlink => return Err(unsafe_entry(file)),
                            _ => {}
                        }
                    }
                    // The pre-780 layout: the portal is the record (no tpgt, no iface).
                    (Kind::File, None) => push(entry),
                    // iscsiadm reads neither of these as a record.
                    _ => {}
                }
            }
        }
        None => {
            what = format!("sendtargets discovery record for {portal}");
            let st = format!("{db_dir}/send_targets");
            let st_real = require_dir(root, &st, &what)?;
            for name in entries(&st_real, &st)? {
                let Some((eip, eport, None)) = parse_portal_entry(&name) else {
                    continue;
                };
                if eip != ip || eport != port {
                    continue;
                }
                let entry = format!("{st}/{name}");
                match kind(&st_real.join(&name)).map_err(io_err(&entry))? {
                    Kind::Symlink => return Err(unsafe_entry(entry)),
                    Kind::Dir => {
                        let file = format!("{entry}/st_config");
                        match kind(&host_path(root, &file)).map_err(io_err(&file))? {
                            Kind::File => push(file),
                            Kind::Symlink => return Err(unsafe_entry(file)),
                            _ => {}
                        }
                    }
                    Kind::File => push(entry),
                    _ => {}
                }
            }
        }
    }
    if found.is_empty() {
        return Err(RecordError::NotFound(what));
    }
    Ok(found)
}

/// What open-iscsi can store and read back unchanged: its parser strips
/// surrounding whitespace, a line ends the value, and the field holds 255 bytes.
pub fn check_secret(s: &str) -> Result<(), RecordError> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && !s.bytes().any(|b| b.is_ascii_control())
        && s.trim() == s;
    if ok {
        Ok(())
    } else {
        Err(RecordError::BadSecret)
    }
}

/// The record's key on a line: up to the first whitespace or `=` (idbm.c).
fn line_key(line: &str) -> &str {
    let l = line.trim_start();
    let end = l
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(l.len());
    &l[..end]
}

/// `content` with `key = secret` in place of every `key` line (the first one
/// replaced, later duplicates dropped), or added before `# END RECORD` (or at the
/// end) when the record has none.
fn edited(content: &str, key: &str, secret: &str) -> Zeroizing<String> {
    let line = Zeroizing::new(format!("{key} = {secret}\n"));
    let mut out = Zeroizing::new(String::with_capacity(content.len() + line.len()));
    let mut done = false;
    let lines: Vec<&str> = content.split_inclusive('\n').collect();
    let end_at = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("# END RECORD"));
    for (i, l) in lines.iter().enumerate() {
        if line_key(l) == key {
            if !done {
                out.push_str(&line);
                done = true;
            }
            continue;
        }
        if !done && Some(i) == end_at {
            out.push_str(&line);
            done = true;
        }
        out.push_str(l);
    }
    if !done {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&line);
    }
    out
}

/// `content` without any `key` line.
fn without_key(content: &str, key: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(content.len()));
    for l in content.split_inclusive('\n') {
        if line_key(l) != key {
            out.push_str(l);
        }
    }
    out
}

/// Largest record moord edits (iscsiadm's are a few KiB).
const MAX_RECORD: u64 = 1 << 20;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Set `key` to the secret in one record file: read it (no symlink), write the
/// edited copy to a 0600 temporary file beside it, fsync, rename over it, fsync
/// the directory. On any error the record is left as it was.
pub fn set_key(f: &RecordFile, key: &str, secret: &SecretText) -> Result<(), RecordError> {
    set_keys(
        f,
        &[RecordEntry {
            key: key.into(),
            value: secret.clone(),
            secret: true,
        }],
    )
}

/// Set every entry in one record file, in one atomic rewrite (see [`set_key`]).
/// Secrets are checked with [`check_secret`]; other values must be one line.
pub fn set_keys(f: &RecordFile, entries: &[RecordEntry]) -> Result<(), RecordError> {
    for e in entries {
        if e.secret {
            check_secret(e.value.expose())?;
        } else if e.value.expose().bytes().any(|b| b.is_ascii_control()) {
            return Err(RecordError::BadSecret);
        }
    }
    let path = f.host_path.as_str();
    let (dir, name) = match (f.real.parent(), f.real.file_name()) {
        (Some(d), Some(n)) => (d, n.to_string_lossy().into_owned()),
        _ => {
            return Err(RecordError::Unsafe {
                path: path.into(),
                message: "has no parent directory".into(),
            });
        }
    };
    let orig = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&f.real)
        .map_err(io_err(path))?;
    let meta = orig.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(RecordError::Unsafe {
            path: path.into(),
            message: "is not a regular file".into(),
        });
    }
    let mut raw = Zeroizing::new(Vec::new());
    orig.take(MAX_RECORD + 1)
        .read_to_end(&mut raw)
        .map_err(io_err(path))?;
    if raw.len() as u64 > MAX_RECORD {
        return Err(RecordError::Unsafe {
            path: path.into(),
            message: format!("is larger than {MAX_RECORD} bytes"),
        });
    }
    let text = std::str::from_utf8(&raw).map_err(|_| RecordError::Unsafe {
        path: path.into(),
        message: "is not UTF-8 text".into(),
    })?;
    let mut new = Zeroizing::new(text.to_string());
    for e in entries {
        new = match e.value.expose() {
            // An empty value is the key's default: drop its lines (a bare `key =`
            // line makes iscsiadm warn, and `<empty>` is not read back as empty).
            "" => without_key(&new, &e.key),
            v => edited(&new, &e.key, v),
        };
    }

    let tmp = dir.join(format!(
        ".{name}.moord-{}-{}.tmp",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut t = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        // Keep the record's owner (root on a host).
        std::os::unix::fs::fchown(&t, Some(meta.uid()), Some(meta.gid()))?;
        t.write_all(new.as_bytes())?;
        t.sync_all()?;
        drop(t);
        std::fs::rename(&tmp, &f.real)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RecordError::Io {
            path: path.into(),
            source: e,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{self, Plan};

    const IQN: &str = "iqn.2004-10.com.example:vol-1";

    fn node(portal: &str, iface: &str) -> IscsiRecord {
        IscsiRecord::Node {
            iqn: IQN.parse().unwrap(),
            portal: portal.parse().unwrap(),
            iface: iface.parse().unwrap(),
        }
    }

    fn disc(portal: &str) -> IscsiRecord {
        IscsiRecord::Discovery {
            portal: portal.parse().unwrap(),
        }
    }

    fn put(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    const RECORD: &str = "# BEGIN RECORD 2.1.8\nnode.name = iqn.2004-10.com.example:vol-1\nnode.session.auth.authmethod = CHAP\nnode.session.auth.username = joe\n# END RECORD\n";

    fn paths(v: &[RecordFile]) -> Vec<&str> {
        v.iter().map(|f| f.host_path.as_str()).collect()
    }

    #[test]
    fn node_record_is_found_and_edited() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        put(
            r,
            &format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260,1/default"),
            RECORD,
        );
        put(
            r,
            &format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260,1/iser"),
            RECORD,
        );
        put(
            r,
            &format!("etc/iscsi/nodes/{IQN}/10.0.0.10,3260,1/default"),
            RECORD,
        );
        put(
            r,
            &format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3261,1/default"),
            RECORD,
        );
        let files = locate(r, "/etc/iscsi", &node("10.0.0.1:3260", "default")).unwrap();
        assert_eq!(
            paths(&files),
            [format!("/etc/iscsi/nodes/{IQN}/10.0.0.1,3260,1/default")]
        );
        assert_eq!(files[0].real, r.join(&files[0].host_path[1..]));
        set_key(
            &files[0],
            "node.session.auth.password",
            &SecretText::new("s3cr3t pw"),
        )
        .unwrap();
        let text = std::fs::read_to_string(&files[0].real).unwrap();
        assert_eq!(
            text,
            RECORD.replace(
                "# END RECORD",
                "node.session.auth.password = s3cr3t pw\n# END RECORD"
            )
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files[0].real)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Set again: replaced in place, not duplicated.
        set_key(
            &files[0],
            "node.session.auth.password",
            &SecretText::new("other"),
        )
        .unwrap();
        let text = std::fs::read_to_string(&files[0].real).unwrap();
        assert_eq!(
            text.matches("node.session.auth.password").count(),
            1,
            "{text}"
        );
        assert!(text.contains("node.session.auth.password = other\n"));
        assert!(text.ends_with("# END RECORD\n"));
        // The other records are untouched, and no temporary file is left.
        let other = r.join(format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260,1/iser"));
        assert_eq!(std::fs::read_to_string(other).unwrap(), RECORD);
        let left: Vec<_> = std::fs::read_dir(files[0].real.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn several_keys_in_one_rewrite_and_empty_values() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        put(
            r,
            &format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260,1/default"),
            "node.session.scan = auto\nnode.session.auth.username_in = tgt\n# END RECORD\n",
        );
        let files = locate(r, "/etc/iscsi", &node("10.0.0.1:3260", "default")).unwrap();
        let entry = |k: &str, v: &str, secret| RecordEntry {
            key: k.into(),
            value: SecretText::new(v),
            secret,
        };
        set_keys(
            &files[0],
            &[
                entry("node.session.scan", "manual", false),
                entry("node.session.auth.username_in", "", false),
                entry("node.session.auth.password", "pw-1", true),
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(&files[0].real).unwrap();
        assert_eq!(
            text,
            "node.session.scan = manual\nnode.session.auth.password = pw-1\n# END RECORD\n"
        );
        // A value with a newline would add a line: refused, nothing written.
        let bad = set_keys(&files[0], &[entry("node.startup", "manual\nx = y", false)]);
        assert!(bad.is_err());
        assert_eq!(std::fs::read_to_string(&files[0].real).unwrap(), text);
    }

    #[test]
    fn every_portal_group_is_found() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        put(
            r,
            &format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260,1/default"),
            RECORD,
        );
        put(
            r,
            &format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260,2/default"),
            RECORD,
        );
        put(
            r,
            &format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260,3/iser"),
            RECORD,
        );
        let files = locate(r, "/etc/iscsi", &node("10.0.0.1:3260", "default")).unwrap();
        assert_eq!(
            paths(&files),
            [
                format!("/etc/iscsi/nodes/{IQN}/10.0.0.1,3260,1/default"),
                format!("/etc/iscsi/nodes/{IQN}/10.0.0.1,3260,2/default"),
            ]
        );
    }

    #[test]
    fn ipv6_record_directories_have_no_brackets() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        // iscsiadm keeps the address as it was given; compare addresses, not text.
        put(
            r,
            &format!("etc/iscsi/nodes/{IQN}/fd00:0:0:0::1,3260,1/default"),
            RECORD,
        );
        put(
            r,
            "etc/iscsi/send_targets/fd00::1,3260/st_config",
            "discovery.startup = manual\n",
        );
        let files = locate(r, "/etc/iscsi", &node("[fd00::1]:3260", "default")).unwrap();
        assert_eq!(
            paths(&files),
            [format!(
                "/etc/iscsi/nodes/{IQN}/fd00:0:0:0::1,3260,1/default"
            )]
        );
        let files = locate(r, "/etc/iscsi", &disc("[fd00::1]:3260")).unwrap();
        assert_eq!(
            paths(&files),
            ["/etc/iscsi/send_targets/fd00::1,3260/st_config"]
        );
        set_key(
            &files[0],
            "discovery.sendtargets.auth.password",
            &SecretText::new("pw"),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&files[0].real).unwrap(),
            "discovery.startup = manual\ndiscovery.sendtargets.auth.password = pw\n"
        );
    }

    #[test]
    fn legacy_layouts() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        // pre-780: the portal itself is the node record (no tpgt, no iface).
        put(r, &format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260"), RECORD);
        // A portal-group entry that is a file is not a record iscsiadm reads.
        put(r, &format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260,1"), RECORD);
        let files = locate(r, "/etc/iscsi", &node("10.0.0.1:3260", "default")).unwrap();
        assert_eq!(
            paths(&files),
            [format!("/etc/iscsi/nodes/{IQN}/10.0.0.1,3260")]
        );
        put(
            r,
            "etc/iscsi/send_targets/10.0.0.1,3260",
            "discovery.startup = manual",
        );
        let files = locate(r, "/etc/iscsi", &disc("10.0.0.1")).unwrap();
        assert_eq!(paths(&files), ["/etc/iscsi/send_targets/10.0.0.1,3260"]);
        set_key(
            &files[0],
            "discovery.sendtargets.auth.password_in",
            &SecretText::new("x"),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&files[0].real).unwrap(),
            "discovery.startup = manual\ndiscovery.sendtargets.auth.password_in = x\n"
        );
    }

    #[test]
    fn missing_records_are_not_found_and_nothing_is_created() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let e = locate(r, "/etc/iscsi", &node("10.0.0.1:3260", "default")).unwrap_err();
        assert!(matches!(e, RecordError::NotFound(_)), "{e}");
        put(
            r,
            &format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260,1/iser"),
            RECORD,
        );
        let e = locate(r, "/etc/iscsi", &node("10.0.0.1:3260", "default")).unwrap_err();
        assert!(matches!(e, RecordError::NotFound(_)), "{e}");
        assert!(
            e.to_string().contains(IQN) && e.to_string().contains("default"),
            "{e}"
        );
        let e = locate(r, "/etc/iscsi", &disc("10.0.0.1:3260")).unwrap_err();
        assert!(matches!(e, RecordError::NotFound(_)), "{e}");
        assert!(!r.join("etc/iscsi/send_targets").exists());
    }

    #[test]
    fn symlinks_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        put(r, "outside/default", RECORD);
        std::fs::create_dir_all(r.join(format!("etc/iscsi/nodes/{IQN}"))).unwrap();
        std::os::unix::fs::symlink(
            r.join("outside"),
            r.join(format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260,1")),
        )
        .unwrap();
        let e = locate(r, "/etc/iscsi", &node("10.0.0.1:3260", "default")).unwrap_err();
        assert!(matches!(e, RecordError::Unsafe { .. }), "{e}");
        // A symlinked record file.
        std::fs::create_dir_all(
            r.join("etc/iscsi/nodes/iqn.2004-10.com.example:b/10.0.0.1,3260,1"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            r.join("outside/default"),
            r.join("etc/iscsi/nodes/iqn.2004-10.com.example:b/10.0.0.1,3260,1/default"),
        )
        .unwrap();
        let rec = IscsiRecord::Node {
            iqn: "iqn.2004-10.com.example:b".parse().unwrap(),
            portal: "10.0.0.1:3260".parse().unwrap(),
            iface: "default".parse().unwrap(),
        };
        let e = locate(r, "/etc/iscsi", &rec).unwrap_err();
        assert!(matches!(e, RecordError::Unsafe { .. }), "{e}");
        // A symlinked target directory.
        std::os::unix::fs::symlink(
            r.join("outside"),
            r.join("etc/iscsi/nodes/iqn.2004-10.com.example:c"),
        )
        .unwrap();
        let rec = IscsiRecord::Node {
            iqn: "iqn.2004-10.com.example:c".parse().unwrap(),
            portal: "10.0.0.1:3260".parse().unwrap(),
            iface: "default".parse().unwrap(),
        };
        assert!(matches!(
            locate(r, "/etc/iscsi", &rec).unwrap_err(),
            RecordError::Unsafe { .. }
        ));
        // And set_key itself does not follow a final symlink swapped in later.
        let f = RecordFile {
            host_path: "/x".into(),
            real: r.join(format!("etc/iscsi/nodes/{IQN}/10.0.0.1,3260,1")),
        };
        assert!(set_key(&f, "node.session.auth.password", &SecretText::new("pw")).is_err());
        assert_eq!(
            std::fs::read_to_string(r.join("outside/default")).unwrap(),
            RECORD
        );
    }

    #[test]
    fn bad_secrets_are_refused_at_plan_time_and_at_edit_time() {
        let args = |secret: &str| {
            serde_json::json!({
                "iqn": IQN, "portal": "10.0.0.1:3260", "iface": "default",
                "key": "password", "secret": secret,
            })
            .to_string()
        };
        for bad in ["pw\nnode.startup = automatic", "pw\r", "", "\u{7f}"] {
            assert!(
                matches!(
                    ops::plan("iscsi.node_secret", &args(bad)),
                    Err(ops::OpError::BadArgs { .. })
                ),
                "{bad:?}"
            );
        }
        let Ok(Plan::IscsiSecret(p)) = ops::plan("iscsi.node_secret", &args("fine pw")) else {
            panic!("plan")
        };
        assert_eq!(p.entries[0].key, "node.session.auth.password");
        assert_eq!(p.shown(), "node.session.auth.password=<secret>");
        assert!(!format!("{p:?}").contains("fine pw"), "{p:?}");
        for bad in ["a\nb", " lead", "trail ", &"x".repeat(256)] {
            assert!(check_secret(bad).is_err(), "{bad:?}");
        }
        assert!(check_secret(&"x".repeat(255)).is_ok());
        let e = RecordError::BadSecret.to_string();
        assert!(!e.contains("fine pw"));
    }

    #[test]
    fn editing_keeps_other_lines() {
        let e = edited(
            "a = 1\nnode.session.auth.password = old\nb = 2\nnode.session.auth.password=older\n",
            "node.session.auth.password",
            "new",
        );
        assert_eq!(*e, "a = 1\nnode.session.auth.password = new\nb = 2\n");
        // A key that merely starts like ours is another key.
        let e = edited(
            "node.session.auth.password_in = x\n",
            "node.session.auth.password",
            "new",
        );
        assert_eq!(
            *e,
            "node.session.auth.password_in = x\nnode.session.auth.password = new\n"
        );
        assert_eq!(*edited("", "k", "v"), "k = v\n");
        assert_eq!(*edited("a = 1", "k", "v"), "a = 1\nk = v\n");
    }
}
