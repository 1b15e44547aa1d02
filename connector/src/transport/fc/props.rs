//! Fibre Channel connection properties (os-brick `FibreChannelConnector`, also used
//! by the s390x zFCP connector), validated: port names, LUNs (integers or decimal
//! strings), the initiator → target map and the scan policy.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::json::{Obj, WrongType, get, get_str};
use crate::transport::{KeyError, VolumeKeys};
use crate::types::{AddressingMode, FcIdError, FcpLun, Lun, TypeError, Wwpn, json_type_name};

/// Most targets (WWPN, LUN pairs) one volume may list.
const MAX_TARGETS: usize = 64;

/// Why FC connection properties were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropsError {
    #[error("connection properties must be a JSON object, got {found}")]
    NotAnObject { found: &'static str },
    #[error("missing connection property {key}")]
    Missing { key: &'static str },
    #[error("connection property {key} must be {expected}, got {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("connection property {key}: {error}")]
    Wwpn { key: String, error: FcIdError },
    #[error("connection property {key}: {error}")]
    Lun { key: String, error: TypeError },
    #[error("connection property {key}: {error}")]
    FcpLun { key: String, error: FcIdError },
    #[error("connection property {key} has invalid value {value:?}: expected {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("target_luns lists {luns} LUNs for {wwns} target ports: give one LUN, or one per port")]
    LunCount { luns: usize, wwns: usize },
    #[error("more than {MAX_TARGETS} targets")]
    TooMany,
}

impl From<WrongType> for PropsError {
    fn from(w: WrongType) -> Self {
        PropsError::WrongType {
            key: w.key.to_owned(),
            expected: w.expected,
            found: w.found,
        }
    }
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

/// One (target port, LUN) of the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FcTarget {
    pub wwpn: Wwpn,
    /// The LUN as Linux sees it (after `addressing_mode`): what scans and HCTLs use.
    pub lun: Lun,
}

/// Validated FC connection properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcProps {
    /// Every (port, LUN) of the volume, in the listed order, duplicates dropped.
    pub targets: Vec<FcTarget>,
    /// `initiator_target_map`: which local ports (HBAs) see which target ports.
    /// `None`: every online HBA, every target.
    pub initiator_target_map: Option<BTreeMap<Wwpn, Vec<Wwpn>>>,
    /// `enable_wildcard_scan`: scan `- - L` on an HBA that sees none of the target
    /// ports. Default **false** (os-brick: true; a wildcard scan adds every
    /// target's LUN L to the host, os-brick #1849504).
    pub enable_wildcard_scan: bool,
    pub addressing_mode: AddressingMode,
    pub access_mode: crate::transport::AccessMode,
    pub encrypted: bool,
    pub enforce_multipath: bool,
    pub device_path: Option<String>,
    pub volume_id: Option<String>,
}

fn wwpn_at(v: &Value, key: &str) -> Result<Wwpn, PropsError> {
    match v {
        Value::String(s) => s.parse().map_err(|error| PropsError::Wwpn {
            key: key.to_owned(),
            error,
        }),
        other => Err(PropsError::WrongType {
            key: key.to_owned(),
            expected: "a string of 16 hex digits",
            found: json_type_name(other),
        }),
    }
}

fn wwpn_list(v: &Value, key: &str) -> Result<Vec<Wwpn>, PropsError> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, w)| wwpn_at(w, &format!("{key}[{i}]")))
            .collect(),
        other => Err(PropsError::WrongType {
            key: key.to_owned(),
            expected: "a list of port names",
            found: json_type_name(other),
        }),
    }
}

/// A LUN: a Linux LUN (an integer or a decimal string, translated by
/// `addressing_mode`), or a 64-bit FCP LUN (`0x` + 16 hex digits, as zFCP and
/// arrays print them), which already says how it is addressed and becomes the
/// Linux LUN the kernel's `scsilun_to_int` makes of it. `true` for the latter.
fn lun_at(v: &Value, key: &str) -> Result<(Lun, bool), PropsError> {
    if let Value::String(s) = v
        && (s.starts_with("0x") || s.starts_with("0X"))
    {
        return s
            .parse::<FcpLun>()
            .map(|f| (f.to_linux(), true))
            .map_err(|error| PropsError::FcpLun {
                key: key.to_owned(),
                error,
            });
    }
    Lun::from_json(v)
        .map(|l| (l, false))
        .map_err(|error| PropsError::Lun {
            key: key.to_owned(),
            error,
        })
}

impl FcProps {
    /// Parses the whole `connection_info` (`{"driver_volume_type", "data"}`) or
    /// just its `data`.
    pub fn from_connection_info(info: &Value) -> Result<FcProps, PropsError> {
        let Value::Object(top) = info else {
            return Err(PropsError::NotAnObject {
                found: json_type_name(info),
            });
        };
        let own = ["target_wwn", "target_wwns"];
        let o: &Obj = match top.get("data") {
            Some(Value::Object(d)) if !own.iter().any(|k| top.contains_key(*k)) => d,
            _ => top,
        };
        // target_wwns wins over target_wwn (os-brick), which may be a string or a list.
        let mut wwns = match (get(o, "target_wwns"), get(o, "target_wwn")) {
            (Some(v), _) => wwpn_list(v, "target_wwns")?,
            (None, Some(v @ Value::Array(_))) => wwpn_list(v, "target_wwn")?,
            (None, Some(v)) => vec![wwpn_at(v, "target_wwn")?],
            (None, None) => return Err(PropsError::Missing { key: "target_wwn" }),
        };
        if wwns.is_empty() {
            return Err(PropsError::Missing { key: "target_wwn" });
        }
        let mut seen = Vec::new();
        wwns.retain(|w| {
            let new = !seen.contains(w);
            seen.push(*w);
            new
        });
        let addressing_mode = match get_str(o, "addressing_mode")? {
            None => AddressingMode::Sam,
            Some(m) => m.parse().map_err(|_| PropsError::BadValue {
                key: "addressing_mode".into(),
                value: m.to_owned(),
                expected: "SAM, transparent, SAM2 or SAM3-flat",
            })?,
        };
        let luns: Vec<(Lun, bool)> = match get(o, "target_luns") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, v)| lun_at(v, &format!("target_luns[{i}]")))
                .collect::<Result<_, _>>()?,
            Some(Value::Array(_)) | None => vec![match get(o, "target_lun") {
                Some(v) => lun_at(v, "target_lun")?,
                // os-brick's default.
                None => (Lun(0), false),
            }],
            Some(other) => {
                return Err(PropsError::WrongType {
                    key: "target_luns".into(),
                    expected: "a list of LUNs",
                    found: json_type_name(other),
                });
            }
        };
        let luns = match (luns.len(), seen.len()) {
            (1, _) => vec![luns[0]; seen.len()],
            (l, w) if l == w => luns,
            (l, w) => return Err(PropsError::LunCount { luns: l, wwns: w }),
        };
        // Pairs follow the listed (not deduplicated) ports, duplicates dropped.
        let mut targets: Vec<FcTarget> = Vec::new();
        for (w, (l, exact)) in seen.iter().zip(luns) {
            let lun = if exact {
                l
            } else {
                l.for_addressing(addressing_mode)
                    .map_err(|error| PropsError::Lun {
                        key: "target_lun".into(),
                        error,
                    })?
            };
            let t = FcTarget { wwpn: *w, lun };
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
        if targets.len() > MAX_TARGETS {
            return Err(PropsError::TooMany);
        }
        let initiator_target_map = match get(o, "initiator_target_map") {
            None => None,
            Some(Value::Object(m)) => {
                let mut map = BTreeMap::new();
                for (init, tgts) in m {
                    let key = format!("initiator_target_map.{init}");
                    let init = wwpn_at(&Value::String(init.clone()), &key)?;
                    let mut listed = wwpn_list(tgts, &key)?;
                    // Ports of the map that are not the volume's are not scanned.
                    let unknown: Vec<String> = listed
                        .iter()
                        .filter(|w| !wwns.contains(w))
                        .map(ToString::to_string)
                        .collect();
                    if !unknown.is_empty() {
                        tracing::warn!(initiator = %init, ?unknown, "initiator_target_map names ports that are not the volume's targets: ignored");
                    }
                    listed.retain(|w| wwns.contains(w));
                    map.insert(init, listed);
                }
                Some(map)
            }
            Some(other) => {
                return Err(PropsError::WrongType {
                    key: "initiator_target_map".into(),
                    expected: "an object of initiator WWPN -> list of target WWPNs",
                    found: json_type_name(other),
                });
            }
        };
        let enable_wildcard_scan = match get(o, "enable_wildcard_scan") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(PropsError::WrongType {
                    key: "enable_wildcard_scan".into(),
                    expected: "a boolean",
                    found: json_type_name(other),
                });
            }
        };
        let keys = VolumeKeys::parse(o)?;
        Ok(FcProps {
            targets,
            initiator_target_map,
            enable_wildcard_scan,
            addressing_mode,
            access_mode: keys.access_mode,
            encrypted: keys.encrypted,
            enforce_multipath: keys.enforce_multipath,
            device_path: keys.device_path,
            volume_id: keys.volume_id,
        })
    }

    /// The targets an HBA with port name `hba` should scan: all of them, or the
    /// ones `initiator_target_map` lists for it (none when it is not in the map).
    pub fn targets_for(&self, hba: Wwpn) -> Vec<FcTarget> {
        match &self.initiator_target_map {
            None => self.targets.clone(),
            Some(map) => {
                let Some(ports) = map.get(&hba) else {
                    return Vec::new();
                };
                self.targets
                    .iter()
                    .filter(|t| ports.contains(&t.wwpn))
                    .copied()
                    .collect()
            }
        }
    }
}

#[cfg(test)]
#[path = "props_tests.rs"]
mod tests;
