//! ECKD/DASD connection properties (protocol `fibre_channel_eckd`; os-brick has no
//! such connector, reference §2.4).
//!
//! [`DasdProps::from_connection_info`] accepts the whole `connection_info`
//! (`{"driver_volume_type": "fibre_channel_eckd", "data": {...}}`) or its `data`:
//!
//! * `device_id` (also spelled `bus_id` or `busid`): the DASD's device bus id
//!   `css.ssid.devno` (`0.0.b100`), or a bare device number (`b100` means
//!   `0.0.b100`, as s390-tools read it). Several spellings may be given only with
//!   the same value;
//! * `unit_address` (also `ua`, 2 hex digits) and `subsystem_id` (4 hex digits):
//!   the unit address and storage subsystem id the DASD's uid carries
//!   (`IBM.750000000DXP71.2300.05` has subsystem id `2300`, unit address `05`).
//!   With `device_id` they are checks, made once the device is online, like
//!   `uid`. Without `device_id` both are required and name an online DASD: see
//!   below;
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
//! Linux cannot map a unit address to a device number before the device is online:
//! the channel subsystem does that through the I/O configuration (IOCDS, or z/VM's
//! directory), which Linux does not see, and the unit address shows up in sysfs
//! only inside the uid of an online DASD. So without `device_id`, attach looks only
//! among DASDs that are online already (it never sets a device online to look) and
//! needs exactly one with that subsystem id and unit address (and the uid's vendor
//! and serial, when `uid` is given). A control unit number (`control_unit`, `cu`)
//! is refused: it is an IOCDS number, not visible to Linux and not necessarily the
//! subsystem id, so moor does not guess one from the other. `ssid` is not a
//! spelling of `subsystem_id` either: in a bus id it is the subchannel set.

use serde_json::Value;

use crate::json::{Obj, get};
use crate::transport::{AccessMode, KeyError, VolumeKeys};
use crate::types::{CcwBusId, DasdUid, json_type_name};

/// A fixed-width hex field of the DASD uid, parsed exactly as the uid prints it.
macro_rules! uid_hex_field {
    ($(#[$doc:meta])* $name:ident($int:ty), $digits:literal, $what:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name($int);

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                if s.len() == $digits && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    <$int>::from_str_radix(s, 16)
                        .map($name)
                        .map_err(|e| e.to_string())
                } else {
                    Err(format!(
                        concat!("{:?} is not a ", $what, " (", $digits, " hex digits, e.g. \"", $example, "\")"),
                        s
                    ))
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:0width$x}", self.0, width = $digits)
            }
        }
    };
}

uid_hex_field!(
    /// A DASD's unit address, as the uid prints it (`05`). Exactly two digits:
    /// `xx` (a HyperPAV alias) names no volume.
    UnitAddress(u8), 2, "unit address", "05"
);
uid_hex_field!(
    /// A storage subsystem id, as the uid prints it (`2300`).
    SubsystemId(u16), 4, "storage subsystem id", "2300"
);

/// Why DASD connection properties were refused; every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum PropsError {
    #[error("connection properties must be a JSON object, got {found}")]
    NotAnObject { found: &'static str },
    #[error(
        "missing connection property device_id (the DASD's bus id, e.g. \"0.0.b100\"), or subsystem_id and unit_address of a DASD that is online"
    )]
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
        "connection property {key} is not supported: a control unit number belongs to the I/O configuration (IOCDS), which Linux does not see, and need not be the storage subsystem id; give device_id, or subsystem_id and unit_address as the DASD's uid shows them"
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
    /// The device bus id (`device_id`, `bus_id` or `busid`). `None`: the device is
    /// looked up among online DASDs by `subsystem_id` and `unit_address` (both
    /// present then).
    pub busid: Option<CcwBusId>,
    /// The uid the device must carry.
    pub uid: Option<DasdUid>,
    /// The storage subsystem id the device's uid must carry (`subsystem_id`).
    pub subsystem_id: Option<SubsystemId>,
    /// The unit address the device's uid must carry (`unit_address`, `ua`).
    pub unit_address: Option<UnitAddress>,
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

/// The spellings of the unit address.
const UA_KEYS: [&str; 2] = ["unit_address", "ua"];

/// A string value under one of `keys` (all that are given must agree), parsed.
fn one_of<T: std::str::FromStr<Err = String> + PartialEq>(
    o: &Obj,
    keys: &[&'static str],
    expected: &'static str,
) -> Result<Option<T>, PropsError> {
    let mut found: Option<(&'static str, String, T)> = None;
    for &key in keys {
        let s = match get(o, key) {
            None => continue,
            Some(Value::String(s)) => s,
            Some(v) => {
                return Err(PropsError::WrongType {
                    key: key.into(),
                    expected,
                    found: json_type_name(v),
                });
            }
        };
        let value: T = s
            .parse()
            .map_err(|error| PropsError::Invalid { key, error })?;
        match &found {
            Some((a, a_value, other)) if *other != value => {
                return Err(PropsError::Ambiguous {
                    a,
                    a_value: a_value.clone(),
                    b: key,
                    b_value: s.clone(),
                });
            }
            Some(_) => {}
            None => found = Some((key, s.clone(), value)),
        }
    }
    Ok(found.map(|(_, _, v)| v))
}

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

fn busid(o: &Obj) -> Result<Option<CcwBusId>, PropsError> {
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
    Ok(found.map(|(_, _, id)| id))
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
            Some(Value::Object(data))
                if !BUSID_KEYS
                    .iter()
                    .chain(&UA_KEYS)
                    .chain(&["subsystem_id"])
                    .any(|k| top.contains_key(*k)) =>
            {
                data
            }
            _ => top,
        };
        for key in ["control_unit", "cu"] {
            if get(o, key).is_some() {
                return Err(PropsError::ControlUnit { key });
            }
        }
        let busid = busid(o)?;
        let subsystem_id: Option<SubsystemId> = one_of(
            o,
            &["subsystem_id"],
            "a string (4 hex digits, e.g. \"2300\")",
        )?;
        let unit_address: Option<UnitAddress> =
            one_of(o, &UA_KEYS, "a string (2 hex digits, e.g. \"05\")")?;
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
        // A unit address is unique only within one storage subsystem.
        if busid.is_none() {
            match (subsystem_id, unit_address) {
                (Some(_), Some(_)) => {}
                (None, None) => return Err(PropsError::MissingBusId),
                (None, Some(_)) => {
                    return Err(PropsError::Requires {
                        key: "unit_address",
                        needs: "subsystem_id without device_id (a unit address is unique only within a storage subsystem)",
                    });
                }
                (Some(_), None) => {
                    return Err(PropsError::Requires {
                        key: "subsystem_id",
                        needs: "unit_address without device_id",
                    });
                }
            }
        }
        // A uid that contradicts them names another device: say so now.
        if let Some(uid) = &uid {
            if let Some(ssid) = subsystem_id
                && ssid.to_string() != uid.subsystem_id()
            {
                return Err(PropsError::Ambiguous {
                    a: "subsystem_id",
                    a_value: ssid.to_string(),
                    b: "uid",
                    b_value: uid.to_string(),
                });
            }
            if let Some(ua) = unit_address
                && ua.to_string() != uid.unit_address()
            {
                return Err(PropsError::Ambiguous {
                    a: "unit_address",
                    a_value: ua.to_string(),
                    b: "uid",
                    b_value: uid.to_string(),
                });
            }
        }
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
            subsystem_id,
            unit_address,
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

impl DasdProps {
    /// The first of `subsystem_id` and `unit_address` that `uid` does not carry,
    /// as (key, asked for, found).
    pub fn address_mismatch(&self, uid: &DasdUid) -> Option<(&'static str, String, String)> {
        let ssid = self
            .subsystem_id
            .map(|s| ("subsystem_id", s.to_string(), uid.subsystem_id()));
        let ua = self
            .unit_address
            .map(|u| ("unit_address", u.to_string(), uid.unit_address()));
        [ssid, ua]
            .into_iter()
            .flatten()
            .find(|(_, asked, found)| asked != found)
            .map(|(key, asked, found)| (key, asked, found.to_owned()))
    }

    /// Whether an online device showing `uid` is the one a lookup without
    /// `device_id` names: its subsystem id and unit address, and with a `uid` also
    /// its vendor and serial (the virtual device unit id is left to the uid check
    /// after the lookup, which names both values).
    pub fn names(&self, uid: &DasdUid) -> bool {
        let (Some(_), Some(_)) = (self.subsystem_id, self.unit_address) else {
            return false;
        };
        self.address_mismatch(uid).is_none()
            && self.uid.as_ref().is_none_or(|u| u.base() == uid.base())
    }
}

#[cfg(test)]
#[path = "props_tests.rs"]
mod tests;
