//! ECKD/DASD connection properties (protocol `fibre_channel_eckd`; os-brick has no
//! such connector, reference §2.4).
//!
//! [`DasdProps::from_connection_info`] accepts the whole `connection_info`
//! (`{"driver_volume_type": "fibre_channel_eckd", "data": {...}}`) or its `data`:
//!
//! * `device_id` (also spelled `bus_id` or `busid`): the DASD's device bus id
//!   `css.ssid.devno` (`0.0.b100`), or a bare device number (`b100` means
//!   `0.0.b100`, as s390-tools read it). Required. Several spellings may be given
//!   only with the same value;
//! * `uid` (optional): the DASD's unique id as the kernel prints it
//!   (`IBM.750000000DXP71.2300.05`, see [`DasdUid`]); attach refuses a device that
//!   carries another one;
//! * `format_if_unformatted` (moor extension, default false): format an
//!   unformatted DASD (`dasdfmt`, compatible disk layout, 4 KiB blocks) instead of
//!   refusing it; moord must also grant `dasd.format`;
//! * `partition_after_format` (moor extension, default false, needs
//!   `format_if_unformatted`): after moor formatted the DASD, write one partition
//!   spanning it (`fdasd -a`); moord must grant `dasd.partition`;
//! * the keys every transport shares ([`VolumeKeys`]).
//!
//! A control unit + unit address pair (`control_unit`, `unit_address`) is refused:
//! the channel subsystem maps a device number to a control unit and unit address
//! through the I/O configuration (IOCDS, or z/VM's directory), which Linux does not
//! expose; sysfs shows the unit address only inside the uid of a device that is
//! already online, so the pair cannot name a device before it is online. Give the
//! device number the I/O configuration assigns, and the `uid` to verify it.

use serde_json::Value;

use crate::json::{Obj, get};
use crate::transport::{AccessMode, KeyError, VolumeKeys};
use crate::types::{CcwBusId, DasdUid, json_type_name};

/// Why DASD connection properties were refused; every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum PropsError {
    #[error("connection properties must be a JSON object, got {found}")]
    NotAnObject { found: &'static str },
    #[error("missing connection property device_id (the DASD's bus id, e.g. \"0.0.b100\")")]
    MissingBusId,
    #[error("connection property {key} must be {expected}, got {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("connection property {key}: {error}")]
    Invalid { key: &'static str, error: String },
    #[error("connection property {key} has invalid value {value:?}: expected {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("connection properties {a} ({a_value}) and {b} ({b_value}) name different devices")]
    Ambiguous {
        a: &'static str,
        a_value: String,
        b: &'static str,
        b_value: String,
    },
    #[error(
        "connection property {key} is not supported: Linux cannot map a control unit and unit address to a device number (the I/O configuration does that); give device_id, and uid to verify the device"
    )]
    ControlUnit { key: &'static str },
    #[error("connection property {key} needs {needs}")]
    Requires {
        key: &'static str,
        needs: &'static str,
    },
}

impl From<KeyError> for PropsError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::WrongType(w) => w.into(),
            KeyError::BadValue {
                key,
                value,
                expected,
            } => PropsError::BadValue {
                key: key.into(),
                value,
                expected,
            },
        }
    }
}

impl From<crate::json::WrongType> for PropsError {
    fn from(w: crate::json::WrongType) -> Self {
        PropsError::WrongType {
            key: w.key.to_owned(),
            expected: w.expected,
            found: w.found,
        }
    }
}

/// Validated ECKD/DASD connection properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DasdProps {
    /// The device bus id (`device_id`, `bus_id` or `busid`).
    pub busid: CcwBusId,
    /// The uid the device must carry.
    pub uid: Option<DasdUid>,
    pub format_if_unformatted: bool,
    pub partition_after_format: bool,
    pub access_mode: AccessMode,
    pub encrypted: bool,
    /// Accepted for compatibility; a DASD's path redundancy is its channel paths,
    /// which the channel subsystem manages (there is no host multipath layer).
    pub enforce_multipath: bool,
    pub device_path: Option<String>,
    pub volume_id: Option<String>,
}

/// The spellings of the bus id, in the order they are reported.
const BUSID_KEYS: [&str; 3] = ["device_id", "bus_id", "busid"];

fn flag(o: &Obj, key: &'static str) -> Result<bool, PropsError> {
    match get(o, key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(PropsError::WrongType {
            key: key.into(),
            expected: "a boolean",
            found: json_type_name(v),
        }),
    }
}

fn busid(o: &Obj) -> Result<CcwBusId, PropsError> {
    let mut found: Option<(&'static str, String, CcwBusId)> = None;
    for key in BUSID_KEYS {
        let s = match get(o, key) {
            None => continue,
            Some(Value::String(s)) => s,
            Some(v) => {
                return Err(PropsError::WrongType {
                    key: key.into(),
                    expected: "a string (a bus id such as \"0.0.b100\")",
                    found: json_type_name(v),
                });
            }
        };
        let id: CcwBusId = s
            .parse()
            .map_err(|e: crate::types::FcIdError| PropsError::Invalid {
                key,
                error: e.to_string(),
            })?;
        match &found {
            Some((a, a_value, other)) if *other != id => {
                return Err(PropsError::Ambiguous {
                    a,
                    a_value: a_value.clone(),
                    b: key,
                    b_value: s.clone(),
                });
            }
            Some(_) => {}
            None => found = Some((key, s.clone(), id)),
        }
    }
    found.map(|(_, _, id)| id).ok_or(PropsError::MissingBusId)
}

impl DasdProps {
    /// Parses `connection_info` (with a `data` object) or its `data` dict.
    pub fn from_connection_info(info: &Value) -> Result<DasdProps, PropsError> {
        let Value::Object(top) = info else {
            return Err(PropsError::NotAnObject {
                found: json_type_name(info),
            });
        };
        let o = match top.get("data") {
            Some(Value::Object(data)) if !BUSID_KEYS.iter().any(|k| top.contains_key(*k)) => data,
            _ => top,
        };
        for key in ["control_unit", "unit_address", "cu", "ua"] {
            if get(o, key).is_some() {
                return Err(PropsError::ControlUnit { key });
            }
        }
        let busid = busid(o)?;
        let uid = match get(o, "uid") {
            None => None,
            Some(Value::String(s)) => {
                Some(s.parse::<DasdUid>().map_err(|e| PropsError::Invalid {
                    key: "uid",
                    error: e.to_string(),
                })?)
            }
            Some(v) => {
                return Err(PropsError::WrongType {
                    key: "uid".into(),
                    expected: "a string (e.g. \"IBM.750000000DXP71.2300.05\")",
                    found: json_type_name(v),
                });
            }
        };
        let format_if_unformatted = flag(o, "format_if_unformatted")?;
        let partition_after_format = flag(o, "partition_after_format")?;
        if partition_after_format && !format_if_unformatted {
            return Err(PropsError::Requires {
                key: "partition_after_format",
                needs: "format_if_unformatted (moor partitions only a DASD it formatted)",
            });
        }
        let VolumeKeys {
            access_mode,
            encrypted,
            enforce_multipath,
            device_path,
            volume_id,
        } = VolumeKeys::parse(o)?;
        Ok(DasdProps {
            busid,
            uid,
            format_if_unformatted,
            partition_after_format,
            access_mode,
            encrypted,
            enforce_multipath,
            device_path,
            volume_id,
        })
    }
}

#[cfg(test)]
#[path = "props_tests.rs"]
mod tests;
