//! Storage transports. Each submodule owns one protocol's connection properties and,
//! as they land, its attach/detach logic. The keys every transport shares are read
//! once, here ([`VolumeKeys`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::{Obj, WrongType, get, get_str};
use crate::types::json_type_name;

pub mod dasd;
pub mod fc;
pub mod iscsi;
pub mod nvmeof;
pub(crate) mod scsi_disks;

/// Something a detach could not remove (or kept on purpose), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leftover {
    /// `/dev/sdb`, `session 3 (iqn…@portal)`, `controller nvme0 (nqn…)`, …
    pub what: String,
    pub reason: String,
}

/// A detach's status: `leftovers` when something is left, `clean-with-data-loss`
/// when devices were removed without a successful flush (`force`), else `clean`.
pub(crate) fn detach_status(leftovers: &[Leftover], data_loss_risk: &[String]) -> &'static str {
    if !leftovers.is_empty() {
        "leftovers"
    } else if !data_loss_risk.is_empty() {
        "clean-with-data-loss"
    } else {
        "clean"
    }
}

/// One line saying what a detach left and what it removed without a flush.
pub(crate) fn detach_summary(leftovers: &[Leftover], data_loss_risk: &[String]) -> String {
    let mut parts = Vec::new();
    for l in leftovers {
        parts.push(format!("{} left: {}", l.what, l.reason));
    }
    if !data_loss_risk.is_empty() {
        parts.push(format!(
            "removed without a successful flush (unwritten data lost): {}",
            data_loss_risk.join(", ")
        ));
    }
    if parts.is_empty() {
        "nothing left".into()
    } else {
        parts.join("; ")
    }
}

/// What an extend found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extended {
    /// The volume's size in bytes after the extend.
    pub new_size: u64,
    /// The device whose size that is (`/dev/dm-N`, `/dev/sdX`, `/dev/nvmeXnY`).
    pub path: String,
    /// Every path rescanned, with its size.
    pub paths: Vec<(String, u64)>,
}

/// Options of a connector whose paths are chosen the same way (NVMe-oF, Fibre
/// Channel).
#[derive(Debug, Clone)]
pub struct Options {
    /// Overall deadline of one attach, detach or extend.
    pub timeout: std::time::Duration,
    /// Use every path: NVMe-oF connects every portal and returns the native
    /// multipath head; Fibre Channel scans every visible path and returns the
    /// dm-multipath map. Otherwise one path is enough.
    pub multipath: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: std::time::Duration::from_secs(120),
            multipath: false,
        }
    }
}

/// `access_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessMode {
    #[default]
    ReadWrite,
    ReadOnly,
}

/// The connection_info keys os-brick reads for every transport (§2.1 "generic
/// keys"), validated the same way for all of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeKeys {
    /// `access_mode`: `rw` (default) or `ro`.
    pub access_mode: AccessMode,
    pub encrypted: bool,
    pub enforce_multipath: bool,
    /// `device_path` (set by Nova after connect): absolute, no control characters.
    pub device_path: Option<String>,
    /// `volume_id` (logs, locks, the encrypted mapping's name).
    pub volume_id: Option<String>,
}

/// Why a generic key was refused; each transport's error wraps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyError {
    WrongType(WrongType),
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl From<WrongType> for KeyError {
    fn from(w: WrongType) -> Self {
        KeyError::WrongType(w)
    }
}

fn no_control(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

fn get_bool(o: &Obj, key: &'static str) -> Result<bool, WrongType> {
    match get(o, key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(WrongType {
            key,
            expected: "a boolean",
            found: json_type_name(v),
        }),
    }
}

/// A string key that must pass `ok`, else [`KeyError::BadValue`] with `expected`.
fn checked(
    o: &Obj,
    key: &'static str,
    ok: fn(&str) -> bool,
    expected: &'static str,
) -> Result<Option<String>, KeyError> {
    match get_str(o, key)? {
        None => Ok(None),
        Some(v) if ok(v) => Ok(Some(v.to_owned())),
        Some(v) => Err(KeyError::BadValue {
            key,
            value: v.to_owned(),
            expected,
        }),
    }
}

impl VolumeKeys {
    pub(crate) fn parse(o: &Obj) -> Result<VolumeKeys, KeyError> {
        let access_mode = match get_str(o, "access_mode")? {
            None | Some("rw") => AccessMode::ReadWrite,
            Some("ro") => AccessMode::ReadOnly,
            Some(m) => {
                return Err(KeyError::BadValue {
                    key: "access_mode",
                    value: m.to_owned(),
                    expected: "rw or ro",
                });
            }
        };
        Ok(VolumeKeys {
            access_mode,
            encrypted: get_bool(o, "encrypted")?,
            enforce_multipath: get_bool(o, "enforce_multipath")?,
            device_path: checked(
                o,
                "device_path",
                |p| p.starts_with('/') && no_control(p) && p.len() <= 4096,
                "an absolute path without control characters",
            )?,
            volume_id: checked(
                o,
                "volume_id",
                |v| no_control(v) && v.len() <= 255,
                "at most 255 characters without control characters",
            )?,
        })
    }
}
