//! The host's NVMe identity: the host NQN (`/etc/nvme/hostnqn`) and host id
//! (`/etc/nvme/hostid`) this host connects with, and whether the kernel's native
//! NVMe multipath is on (`/sys/module/nvme_core/parameters/multipath`).
//!
//! Reading is unprivileged ([`read_identity`], [`native_multipath`]). When a file
//! is missing, [`plan_identity`] decides what to create (pure logic, tested here)
//! and [`ensure_identity`] asks moord to create it (`nvme.host_identity`):
//!
//! * both present: used as they are;
//! * one present: the other is derived from it, so they agree (a UUID-form host
//!   NQN carries the host id);
//! * none: both from the system UUID (`/sys/class/dmi/id/product_uuid`, root-only,
//!   read through `nvme.system_uuid`), as nvme-cli and os-brick do; when the
//!   firmware reports no UUID or a placeholder shared by many machines, from a
//!   random UUID (`/proc/sys/kernel/random/uuid`) instead, because two hosts with
//!   one NQN would see each other's volumes.
//!
//! A present file that does not parse is an error: moor never replaces an identity
//! (arrays grant volumes to it).

use std::io;
use std::path::PathBuf;
use std::time::Instant;

use moor_privhelper::ops::{NvmeHostIdentity, NvmeSystemUuid, TypedOp};

use crate::exec::{self, PrivError, Privileged};
use crate::host::{HostError, HostPaths};
use crate::types::{Nqn, NvmeIdError, NvmeUuid};

/// Why the host identity could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum HostIdentityError {
    #[error(transparent)]
    Host(#[from] HostError),
    /// The file exists but holds no valid value; it is never overwritten.
    #[error("{}: {error}", path.display())]
    Invalid { path: PathBuf, error: NvmeIdError },
    #[error("{}: empty", path.display())]
    Empty { path: PathBuf },
    #[error(transparent)]
    Privileged(#[from] PrivError),
    /// moord reported success but the file is still not there (or not valid).
    #[error("{} is missing after moord created it", path.display())]
    NotCreated { path: PathBuf },
    #[error("no UUID to derive the host identity from: {reason}")]
    NoUuid { reason: String },
}

/// The identity files as found (`None`: the file does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FoundIdentity<'a> {
    pub hostnqn: Option<&'a Nqn>,
    pub hostid: Option<NvmeUuid>,
}

/// The host NQN and host id to connect with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    pub hostnqn: Nqn,
    pub hostid: NvmeUuid,
}

/// Where a created value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// Both files exist.
    Files,
    /// Derived from the file that exists.
    OtherFile,
    SystemUuid,
    Random,
}

/// What [`plan_identity`] decided: the identity, and the files moord must create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPlan {
    pub identity: HostIdentity,
    pub source: IdentitySource,
    /// `nvme.host_identity` operations, one per missing file.
    pub create: Vec<NvmeHostIdentity>,
}

/// SMBIOS UUIDs that many machines share (unset or placeholder firmware values).
const SHARED_SYSTEM_UUIDS: &[&str] = &[
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "03000200-0400-0500-0006-000700080009",
    "fefefefe-fefe-fefe-fefe-fefefefefefe",
    "00010203-0405-0607-0809-0a0b0c0d0e0f",
];

/// Reads a one-value file: its first non-empty line, trimmed. `Ok(None)` when the
/// file does not exist.
fn read_value(
    paths: &HostPaths,
    rel: &str,
) -> Result<Option<(PathBuf, String)>, HostIdentityError> {
    let path = paths.etc(rel);
    let Some(text) = paths.read_attr(&path)? else {
        return Ok(None);
    };
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(v) => Ok(Some((path, v.to_owned()))),
        None => Err(HostIdentityError::Empty { path }),
    }
}

/// `/etc/nvme/hostnqn` and `/etc/nvme/hostid`, each `None` when absent.
pub fn read_identity(
    paths: &HostPaths,
) -> Result<(Option<Nqn>, Option<NvmeUuid>), HostIdentityError> {
    let parse_err = |path: PathBuf| move |error| HostIdentityError::Invalid { path, error };
    let hostnqn = match read_value(paths, "nvme/hostnqn")? {
        Some((path, v)) => Some(v.parse::<Nqn>().map_err(parse_err(path))?),
        None => None,
    };
    let hostid = match read_value(paths, "nvme/hostid")? {
        Some((path, v)) => Some(v.parse::<NvmeUuid>().map_err(parse_err(path))?),
        None => None,
    };
    Ok((hostnqn, hostid))
}

/// The system UUID as the unprivileged caller can see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemUuid {
    Found(NvmeUuid),
    /// The attribute is root-only (mode 0400): ask moord (`nvme.system_uuid`).
    Unreadable,
    /// No DMI (virtual machines without SMBIOS, s390x, most ARM boards).
    Absent,
    /// Not usable: unparsable, or a placeholder many machines share.
    Unusable(String),
}

/// Judges the text of `product_uuid`.
pub fn system_uuid_from_text(text: &str) -> SystemUuid {
    let t = text.trim();
    match t.parse::<NvmeUuid>() {
        Ok(u) if SHARED_SYSTEM_UUIDS.contains(&u.to_string().as_str()) => {
            SystemUuid::Unusable(format!("{t} is a placeholder many machines share"))
        }
        Ok(u) => SystemUuid::Found(u),
        Err(e) => SystemUuid::Unusable(e.to_string()),
    }
}

/// Reads `/sys/class/dmi/id/product_uuid` directly.
pub fn read_system_uuid(paths: &HostPaths) -> Result<SystemUuid, HostError> {
    match paths.read_attr(&paths.sys("class/dmi/id/product_uuid")) {
        Ok(Some(text)) => Ok(system_uuid_from_text(&text)),
        Ok(None) => Ok(SystemUuid::Absent),
        Err(HostError::Read { source, .. }) if source.kind() == io::ErrorKind::PermissionDenied => {
            Ok(SystemUuid::Unreadable)
        }
        Err(e) => Err(e),
    }
}

/// A fresh random UUID from the kernel (`/proc/sys/kernel/random/uuid`).
pub fn random_uuid(paths: &HostPaths) -> Result<NvmeUuid, HostIdentityError> {
    let path = paths.proc("sys/kernel/random/uuid");
    let text = paths
        .read_attr(&path)?
        .ok_or_else(|| HostIdentityError::NoUuid {
            reason: format!("{} does not exist", path.display()),
        })?;
    text.trim()
        .parse()
        .map_err(|error| HostIdentityError::Invalid { path, error })
}

/// Decides the identity from what exists. `system` is the system UUID if usable;
/// `random` is called only when nothing else gives a UUID.
pub fn plan_identity(
    found: FoundIdentity<'_>,
    system: Option<NvmeUuid>,
    random: impl FnOnce() -> Result<NvmeUuid, HostIdentityError>,
) -> Result<IdentityPlan, HostIdentityError> {
    let mut create = Vec::new();
    let (identity, source) = match (found.hostnqn, found.hostid) {
        (Some(nqn), Some(id)) => (
            HostIdentity {
                hostnqn: nqn.clone(),
                hostid: id,
            },
            IdentitySource::Files,
        ),
        (Some(nqn), None) => {
            // nvme-cli derives the host id from a UUID-form NQN the same way.
            let (hostid, source) = match nqn.uuid() {
                Some(u) => (u, IdentitySource::OtherFile),
                None => match system {
                    Some(u) => (u, IdentitySource::SystemUuid),
                    None => (random()?, IdentitySource::Random),
                },
            };
            create.push(NvmeHostIdentity::Hostid(hostid));
            (
                HostIdentity {
                    hostnqn: nqn.clone(),
                    hostid,
                },
                source,
            )
        }
        (None, Some(id)) => {
            let hostnqn = Nqn::from_uuid(&id);
            create.push(NvmeHostIdentity::Hostnqn(hostnqn.clone()));
            (
                HostIdentity {
                    hostnqn,
                    hostid: id,
                },
                IdentitySource::OtherFile,
            )
        }
        (None, None) => {
            let (u, source) = match system {
                Some(u) => (u, IdentitySource::SystemUuid),
                None => (random()?, IdentitySource::Random),
            };
            let hostnqn = Nqn::from_uuid(&u);
            create.push(NvmeHostIdentity::Hostnqn(hostnqn.clone()));
            create.push(NvmeHostIdentity::Hostid(u));
            (HostIdentity { hostnqn, hostid: u }, source)
        }
    };
    Ok(IdentityPlan {
        identity,
        source,
        create,
    })
}

/// The system UUID through moord (`nvme.system_uuid`), judged like a direct read.
fn system_uuid_via_moord(
    p: &dyn Privileged,
    deadline: Instant,
) -> Result<SystemUuid, HostIdentityError> {
    let op = NvmeSystemUuid {};
    let left = deadline.saturating_duration_since(Instant::now());
    let reply = p.call(
        NvmeSystemUuid::NAME,
        serde_json::to_value(op).unwrap_or_default(),
        &op,
        left,
    )?;
    let Some(content) = reply.get("content").and_then(|c| c.as_str()) else {
        // A dry run answers without content: plan as if there were no DMI.
        return Ok(SystemUuid::Absent);
    };
    let bytes = moor_privhelper::ops::b64_decode(content).map_err(|e| PrivError::Failed {
        op: NvmeSystemUuid::NAME,
        message: format!("unexpected reply: {e}"),
    })?;
    Ok(system_uuid_from_text(&String::from_utf8_lossy(&bytes)))
}

/// The identity to connect with, creating missing files through moord first.
/// In a dry run the planned identity is returned without re-reading.
pub fn ensure_identity(
    paths: &HostPaths,
    p: &dyn Privileged,
    deadline: Instant,
) -> Result<HostIdentity, HostIdentityError> {
    let (hostnqn, hostid) = read_identity(paths)?;
    if let (Some(hostnqn), Some(hostid)) = (&hostnqn, hostid) {
        return Ok(HostIdentity {
            hostnqn: hostnqn.clone(),
            hostid,
        });
    }
    let found = FoundIdentity {
        hostnqn: hostnqn.as_ref(),
        hostid,
    };
    // The system UUID is only needed when the files give no UUID.
    let needs_system = hostid.is_none() && hostnqn.as_ref().and_then(Nqn::uuid).is_none();
    let system = if needs_system {
        let s = match read_system_uuid(paths)? {
            SystemUuid::Unreadable => system_uuid_via_moord(p, deadline)?,
            other => other,
        };
        match s {
            SystemUuid::Found(u) => Some(u),
            SystemUuid::Unusable(reason) => {
                tracing::warn!(%reason, "system UUID not used for the NVMe host identity");
                None
            }
            SystemUuid::Absent | SystemUuid::Unreadable => None,
        }
    } else {
        None
    };
    let plan = plan_identity(found, system, || random_uuid(paths))?;
    tracing::info!(
        hostnqn = %plan.identity.hostnqn,
        hostid = %plan.identity.hostid,
        source = ?plan.source,
        "creating the NVMe host identity"
    );
    let mut failed = None;
    for op in &plan.create {
        if let Err(e) = exec::run(p, op, deadline) {
            // Another process may have created the file meanwhile (moord creates
            // exclusively): what is on disk decides below.
            tracing::warn!(error = %e, "creating an NVMe host identity file");
            failed = Some(e);
        }
    }
    if p.dry_run() {
        return Ok(plan.identity);
    }
    // Read back what is on disk: that is what every later connect will use.
    match (read_identity(paths)?, failed) {
        ((Some(hostnqn), Some(hostid)), _) => Ok(HostIdentity { hostnqn, hostid }),
        (_, Some(e)) => Err(e.into()),
        ((None, _), None) => Err(HostIdentityError::NotCreated {
            path: paths.etc("nvme/hostnqn"),
        }),
        ((_, None), None) => Err(HostIdentityError::NotCreated {
            path: paths.etc("nvme/hostid"),
        }),
    }
}

/// `nvme_core`'s `multipath` parameter: `Some(true)` for `Y`. `None` when the
/// module is not loaded (it loads on the first connect, with its default).
pub fn native_multipath(paths: &HostPaths) -> Result<Option<bool>, HostError> {
    Ok(paths
        .read_attr(&paths.sys("module/nvme_core/parameters/multipath"))?
        .map(|v| v.trim() == "Y"))
}

/// The NVMe keys of `get_connector_properties` (os-brick §2.5), read-only: no file
/// is created while answering (os-brick creates them here).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NvmeConnectorProperties {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nqn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvme_hostid: Option<String>,
    pub nvme_native_multipath: bool,
}

/// Collects [`NvmeConnectorProperties`].
pub fn connector_properties(
    paths: &HostPaths,
) -> Result<NvmeConnectorProperties, HostIdentityError> {
    let (nqn, hostid) = read_identity(paths)?;
    Ok(NvmeConnectorProperties {
        nqn: nqn.map(|n| n.to_string()),
        nvme_hostid: hostid.map(|u| u.to_string()),
        nvme_native_multipath: native_multipath(paths)?.unwrap_or(false),
    })
}

#[cfg(test)]
#[path = "hostid_tests.rs"]
mod tests;
