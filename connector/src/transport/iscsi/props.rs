//! iSCSI connection properties (os-brick `connection_info['data']`, reference §2.1).
//!
//! [`IscsiProps::from_connection_info`] accepts either the whole `connection_info`
//! (`{"driver_volume_type": "iscsi", "data": {...}}`) or the data dict itself, keeps
//! the keys os-brick uses, ignores every other key, and refuses invalid values with a
//! [`PropsError`] naming the key (secrets are never echoed).

use std::fmt;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::types::{AddressingMode, Iqn, Lun, Portal, TypeError, json_type_name};

/// Longest CHAP user name / secret accepted: open-iscsi keeps at most 255 bytes
/// (`AUTH_STR_MAX_LEN` 256 including the terminating NUL).
pub const MAX_CHAP_LEN: usize = 255;

/// Why connection properties were refused.
#[derive(Debug, thiserror::Error)]
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
    /// The cause is part of the message (not a `source`), so it is printed once.
    #[error("connection property {key}: {error}")]
    Invalid { key: String, error: TypeError },
    #[error("connection property {key} has invalid value {value:?}: expected {expected}")]
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    /// The secret itself is never part of the message.
    #[error("connection property {key} is not a valid secret: {reason}")]
    BadSecret {
        key: &'static str,
        reason: &'static str,
    },
    #[error("connection property {key} is not a valid CHAP user name: {reason}")]
    BadUsername {
        key: &'static str,
        reason: &'static str,
    },
    #[error("connection property {key} is an empty list")]
    EmptyList { key: &'static str },
    #[error(
        "target_portals ({portals}), target_iqns ({iqns}) and target_luns ({luns}) must have the same length"
    )]
    LengthMismatch {
        portals: usize,
        iqns: usize,
        luns: usize,
    },
    #[error("connection property {key} is required because {because} is set")]
    Requires {
        key: &'static str,
        because: &'static str,
    },
}

/// A secret string (CHAP password): zeroized on drop, redacted in `Debug`, no
/// `Display` and no `Serialize`.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `auth_method` / `discovery_auth_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Chap,
}

/// CHAP credentials: one-way (`username`/`password`) and optionally mutual
/// (`username_in`/`password_in`, iscsiadm's `node.session.auth.*_in`).
#[derive(Debug, Clone)]
pub struct Chap {
    pub username: String,
    pub password: Secret,
    /// Mutual CHAP: the target's credentials (`*_in`). Not an os-brick key.
    pub mutual: Option<(String, Secret)>,
}

pub use crate::transport::AccessMode;

/// One path to try: a portal, a target name and the LUN Linux will see (already
/// translated by `addressing_mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiTarget {
    pub portal: Portal,
    pub iqn: Iqn,
    pub lun: Lun,
}

/// Validated iSCSI connection properties.
#[derive(Debug, Clone)]
pub struct IscsiProps {
    /// `target_portal` (also the sendtargets discovery portal).
    pub target_portal: Option<Portal>,
    /// `target_iqn`.
    pub target_iqn: Option<Iqn>,
    /// `target_lun` as given (default 0 when absent, as os-brick), before addressing.
    pub target_lun: Option<Lun>,
    /// True when `target_portals` and `target_iqns` were both given: the paths are
    /// known and no discovery is needed.
    pub has_target_lists: bool,
    targets: Vec<IscsiTarget>,
    /// Session CHAP (`auth_method`, `auth_username`, `auth_password`, + `*_in`).
    pub auth: Option<Chap>,
    /// Discovery CHAP (`discovery_auth_*`).
    pub discovery_auth: Option<Chap>,
    pub addressing_mode: AddressingMode,
    pub access_mode: AccessMode,
    pub encrypted: bool,
    pub enforce_multipath: bool,
    /// `device_path` (set by Nova after connect).
    pub device_path: Option<String>,
    /// `volume_id` (passthrough, for logs and locks).
    pub volume_id: Option<String>,
}

use crate::json::{Obj, get};
use crate::transport::{KeyError, VolumeKeys};

impl From<KeyError> for PropsError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::WrongType(w) => w.into(),
            KeyError::BadValue {
                key,
                value,
                expected,
            } => PropsError::BadValue {
                key,
                value,
                expected,
            },
        }
    }
}

fn get_str<'a>(o: &'a Obj, key: &'static str) -> Result<Option<&'a str>, PropsError> {
    Ok(crate::json::get_str(o, key)?)
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

fn get_list<'a>(o: &'a Obj, key: &'static str) -> Result<Option<&'a Vec<Value>>, PropsError> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(PropsError::WrongType {
            key: key.to_owned(),
            expected: "a list",
            found: json_type_name(v),
        }),
    }
}

fn parse_str_item<T: std::str::FromStr<Err = TypeError>>(
    key: String,
    v: &Value,
) -> Result<T, PropsError> {
    match v {
        Value::String(s) => s
            .parse()
            .map_err(|source| PropsError::Invalid { key, error: source }),
        other => Err(PropsError::WrongType {
            key,
            expected: "a string",
            found: json_type_name(other),
        }),
    }
}

fn parse_lun(key: String, v: &Value) -> Result<Lun, PropsError> {
    Lun::from_json(v).map_err(|source| PropsError::Invalid { key, error: source })
}

fn no_control(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

fn chap_username(o: &Obj, key: &'static str) -> Result<Option<String>, PropsError> {
    let Some(u) = get_str(o, key)? else {
        return Ok(None);
    };
    // The characters moord accepts in a node record value (see ops::iscsi).
    let reason = if u.is_empty() {
        "empty"
    } else if u.len() > MAX_CHAP_LEN {
        "longer than 255 bytes"
    } else if !no_control(u) {
        "contains control characters"
    } else if !u
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._@:-".contains(&b))
    {
        "may only contain A-Z a-z 0-9 . _ @ : -"
    } else {
        return Ok(Some(u.to_owned()));
    };
    Err(PropsError::BadUsername { key, reason })
}

fn secret(o: &Obj, key: &'static str) -> Result<Option<Secret>, PropsError> {
    let Some(v) = get(o, key) else {
        return Ok(None);
    };
    let Value::String(p) = v else {
        return Err(PropsError::WrongType {
            key: key.to_owned(),
            expected: "a string",
            found: json_type_name(v),
        });
    };
    // Newlines would corrupt open-iscsi's line-based node records.
    // open-iscsi strips surrounding whitespace when it reads a record back.
    let reason = if p.is_empty() {
        "empty"
    } else if p.len() > MAX_CHAP_LEN {
        "longer than 255 bytes"
    } else if !no_control(p) {
        "contains control characters"
    } else if p.trim() != p {
        "has leading or trailing whitespace"
    } else {
        return Ok(Some(Secret(Zeroizing::new(p.clone()))));
    };
    Err(PropsError::BadSecret { key, reason })
}

fn auth_method(o: &Obj, key: &'static str) -> Result<Option<AuthMethod>, PropsError> {
    match get_str(o, key)? {
        None => Ok(None),
        Some(m) if m.eq_ignore_ascii_case("CHAP") => Ok(Some(AuthMethod::Chap)),
        Some(m) if m.is_empty() || m.eq_ignore_ascii_case("None") => Ok(None),
        Some(m) => Err(PropsError::BadValue {
            key,
            value: m.to_owned(),
            expected: "CHAP or None",
        }),
    }
}

struct ChapKeys {
    method: &'static str,
    user: &'static str,
    pass: &'static str,
    user_in: &'static str,
    pass_in: &'static str,
}

const SESSION_CHAP: ChapKeys = ChapKeys {
    method: "auth_method",
    user: "auth_username",
    pass: "auth_password",
    user_in: "auth_username_in",
    pass_in: "auth_password_in",
};

const DISCOVERY_CHAP: ChapKeys = ChapKeys {
    method: "discovery_auth_method",
    user: "discovery_auth_username",
    pass: "discovery_auth_password",
    user_in: "discovery_auth_username_in",
    pass_in: "discovery_auth_password_in",
};

/// CHAP credentials when the method is CHAP; the other keys are ignored otherwise
/// (as os-brick, which only reads them when the method is set).
fn chap(o: &Obj, k: &ChapKeys) -> Result<Option<Chap>, PropsError> {
    if auth_method(o, k.method)?.is_none() {
        return Ok(None);
    }
    let username = chap_username(o, k.user)?.ok_or(PropsError::Requires {
        key: k.user,
        because: k.method,
    })?;
    let password = secret(o, k.pass)?.ok_or(PropsError::Requires {
        key: k.pass,
        because: k.method,
    })?;
    let mutual = match (chap_username(o, k.user_in)?, secret(o, k.pass_in)?) {
        (None, None) => None,
        (Some(u), Some(p)) => Some((u, p)),
        (Some(_), None) => {
            return Err(PropsError::Requires {
                key: k.pass_in,
                because: k.user_in,
            });
        }
        (None, Some(_)) => {
            return Err(PropsError::Requires {
                key: k.user_in,
                because: k.pass_in,
            });
        }
    };
    Ok(Some(Chap {
        username,
        password,
        mutual,
    }))
}

impl IscsiProps {
    /// Parses `connection_info` (with a `data` object) or its `data` dict.
    pub fn from_connection_info(info: &Value) -> Result<IscsiProps, PropsError> {
        let Value::Object(top) = info else {
            return Err(PropsError::NotAnObject {
                found: json_type_name(info),
            });
        };
        let o = match top.get("data") {
            Some(Value::Object(data))
                if !top.contains_key("target_portal") && !top.contains_key("target_portals") =>
            {
                data
            }
            _ => top,
        };

        let addressing_mode = match get_str(o, "addressing_mode")? {
            None => AddressingMode::default(),
            Some(m) => m.parse().map_err(|error| PropsError::Invalid {
                key: "addressing_mode".into(),
                error,
            })?,
        };
        let address = |key: String, lun: Lun| {
            lun.for_addressing(addressing_mode)
                .map_err(|source| PropsError::Invalid { key, error: source })
        };

        let target_portal = get(o, "target_portal")
            .map(|v| parse_str_item::<Portal>("target_portal".into(), v))
            .transpose()?;
        let target_iqn = get(o, "target_iqn")
            .map(|v| parse_str_item::<Iqn>("target_iqn".into(), v))
            .transpose()?;
        let target_lun = get(o, "target_lun")
            .map(|v| parse_lun("target_lun".into(), v))
            .transpose()?;

        let portals = get_list(o, "target_portals")?;
        let iqns = get_list(o, "target_iqns")?;
        let has_target_lists = portals.is_some() && iqns.is_some();

        let targets = match (portals, iqns) {
            (Some(portals), Some(iqns)) => {
                if portals.is_empty() {
                    return Err(PropsError::EmptyList {
                        key: "target_portals",
                    });
                }
                // os-brick: `target_luns or [target_lun] * len(target_iqns)`, so an
                // empty target_luns falls back to target_lun too.
                let luns: Vec<Lun> = match get_list(o, "target_luns")? {
                    Some(l) if !l.is_empty() => l
                        .iter()
                        .enumerate()
                        .map(|(i, v)| parse_lun(format!("target_luns[{i}]"), v))
                        .collect::<Result<_, _>>()?,
                    _ => {
                        let lun = target_lun.ok_or(PropsError::Requires {
                            key: "target_lun",
                            because: "target_portals is set without target_luns",
                        })?;
                        vec![lun; iqns.len()]
                    }
                };
                if portals.len() != iqns.len() || luns.len() != iqns.len() {
                    return Err(PropsError::LengthMismatch {
                        portals: portals.len(),
                        iqns: iqns.len(),
                        luns: luns.len(),
                    });
                }
                let mut targets = Vec::with_capacity(portals.len());
                for (i, ((p, q), l)) in portals.iter().zip(iqns).zip(luns).enumerate() {
                    targets.push(IscsiTarget {
                        portal: parse_str_item(format!("target_portals[{i}]"), p)?,
                        iqn: parse_str_item(format!("target_iqns[{i}]"), q)?,
                        lun: address(format!("target_luns[{i}]"), l)?,
                    });
                }
                targets
            }
            _ => {
                let portal = target_portal.clone().ok_or(PropsError::Missing {
                    key: "target_portal",
                })?;
                let iqn = target_iqn
                    .clone()
                    .ok_or(PropsError::Missing { key: "target_iqn" })?;
                let lun = address("target_lun".into(), target_lun.unwrap_or(Lun(0)))?;
                vec![IscsiTarget { portal, iqn, lun }]
            }
        };

        let VolumeKeys {
            access_mode,
            encrypted,
            enforce_multipath,
            device_path,
            volume_id,
        } = VolumeKeys::parse(o)?;

        Ok(IscsiProps {
            target_portal,
            target_iqn,
            target_lun,
            has_target_lists,
            targets,
            auth: chap(o, &SESSION_CHAP)?,
            discovery_auth: chap(o, &DISCOVERY_CHAP)?,
            addressing_mode,
            access_mode,
            encrypted,
            enforce_multipath,
            device_path,
            volume_id,
        })
    }

    /// The (portal, iqn, lun) paths to try, in order: the `target_portals` /
    /// `target_iqns` / `target_luns` lists when given (single-path tries them one
    /// after the other, multipath uses all), else the single `target_*` triple.
    /// LUNs are already translated by `addressing_mode`.
    ///
    /// When [`IscsiProps::has_target_lists`] is false, multipath must first discover
    /// the other paths through `target_portal` (sendtargets); this list then holds
    /// only the primary path.
    pub fn targets(&self) -> &[IscsiTarget] {
        &self.targets
    }

    /// The first path to try.
    pub fn primary(&self) -> Option<&IscsiTarget> {
        self.targets.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IQN1: &str = "iqn.2000-05.com.3pardata:20810002ac00383d";
    const IQN2: &str = "iqn.2000-05.com.3pardata:21810002ac00383d";

    fn single() -> Value {
        json!({"target_portal": "192.168.1.2:3260",
               "target_iqn": "iqn.2010-10.org.openstack:volume-uuid",
               "target_lun": 1})
    }

    fn parse(v: Value) -> Result<IscsiProps, PropsError> {
        IscsiProps::from_connection_info(&v)
    }

    fn with(mut base: Value, key: &str, v: Value) -> Value {
        base.as_object_mut().unwrap().insert(key.to_owned(), v);
        base
    }

    #[test]
    fn single_path_minimal() {
        let p = parse(single()).unwrap();
        assert!(!p.has_target_lists);
        assert_eq!(p.targets().len(), 1);
        let t = &p.targets()[0];
        assert_eq!(t.portal.to_string(), "192.168.1.2:3260");
        assert_eq!(t.iqn.as_str(), "iqn.2010-10.org.openstack:volume-uuid");
        assert_eq!(t.lun, Lun(1));
        assert_eq!(p.primary(), Some(t));
        assert_eq!(p.access_mode, AccessMode::ReadWrite);
        assert_eq!(p.addressing_mode, AddressingMode::Sam);
        assert!(!p.encrypted && !p.enforce_multipath);
        assert!(p.auth.is_none() && p.discovery_auth.is_none());
        assert!(p.device_path.is_none() && p.volume_id.is_none());
    }

    #[test]
    fn wrapped_in_connection_info() {
        let p = parse(json!({"driver_volume_type": "iscsi", "data": single()})).unwrap();
        assert_eq!(p.targets()[0].lun, Lun(1));
    }

    #[test]
    fn not_an_object() {
        assert!(matches!(
            parse(json!([1])),
            Err(PropsError::NotAnObject { found: "array" })
        ));
    }

    #[test]
    fn missing_keys() {
        let mut v = single();
        v.as_object_mut().unwrap().remove("target_iqn");
        assert!(matches!(
            parse(v),
            Err(PropsError::Missing { key: "target_iqn" })
        ));
        let mut v = single();
        v.as_object_mut().unwrap().remove("target_portal");
        assert!(matches!(
            parse(v),
            Err(PropsError::Missing {
                key: "target_portal"
            })
        ));
        // target_lun defaults to 0, as os-brick's `.get('target_lun', 0)`.
        let mut v = single();
        v.as_object_mut().unwrap().remove("target_lun");
        assert_eq!(parse(v).unwrap().targets()[0].lun, Lun(0));
    }

    #[test]
    fn string_lun() {
        let p = parse(with(single(), "target_lun", json!("1"))).unwrap();
        assert_eq!(p.targets()[0].lun, Lun(1));
        assert_eq!(p.target_lun, Some(Lun(1)));
        let e = parse(with(single(), "target_lun", json!("1a"))).unwrap_err();
        assert!(e.to_string().contains("target_lun"), "{e}");
        assert!(parse(with(single(), "target_lun", json!(-1))).is_err());
        assert!(parse(with(single(), "target_lun", json!(true))).is_err());
    }

    #[test]
    fn large_lun_and_addressing() {
        let p = parse(with(single(), "target_lun", json!(300))).unwrap();
        assert_eq!(p.targets()[0].lun.by_path_id(), "0x012c000000000000");
        let v = with(
            with(single(), "target_lun", json!(300)),
            "addressing_mode",
            json!("SAM2"),
        );
        let p = parse(v).unwrap();
        assert_eq!(p.addressing_mode, AddressingMode::Sam2);
        assert_eq!(p.targets()[0].lun, Lun(16684));
        assert_eq!(p.targets()[0].lun.by_path_id(), "0x412c000000000000");
        assert_eq!(p.target_lun, Some(Lun(300)));
        let v = with(
            with(single(), "target_lun", json!("5")),
            "addressing_mode",
            json!("SAM3-flat"),
        );
        assert_eq!(parse(v).unwrap().targets()[0].lun, Lun(16389));
        let v = with(single(), "addressing_mode", json!("transparent"));
        assert_eq!(parse(v).unwrap().targets()[0].lun, Lun(1));
        let e = parse(with(single(), "addressing_mode", json!("sam2"))).unwrap_err();
        assert!(e.to_string().contains("addressing_mode"), "{e}");
        let v = with(
            with(single(), "target_lun", json!(20000)),
            "addressing_mode",
            json!("SAM2"),
        );
        assert!(parse(v).is_err());
    }

    #[test]
    fn ipv6_portal() {
        let p = parse(with(
            single(),
            "target_portal",
            json!("[2001:db8::10]:3260"),
        ))
        .unwrap();
        assert_eq!(p.targets()[0].portal.to_string(), "[2001:db8::10]:3260");
        assert_eq!(p.targets()[0].portal.by_path_form(), "2001:db8::10:3260");
        let e = parse(with(single(), "target_portal", json!("[2001:db8::10:3260"))).unwrap_err();
        assert!(e.to_string().contains("target_portal"), "{e}");
    }

    #[test]
    fn bad_iqn() {
        for bad in [
            "iqn.2010-10.org.openstack:vol;reboot",
            "volume-1",
            "iqn.2010-10.org.x:a b",
            "",
        ] {
            let e = parse(with(single(), "target_iqn", json!(bad))).unwrap_err();
            assert!(
                matches!(&e, PropsError::Invalid { key, .. } if key == "target_iqn"),
                "{e}"
            );
        }
        let e = parse(with(single(), "target_iqn", json!(5))).unwrap_err();
        assert!(matches!(
            e,
            PropsError::WrongType {
                found: "number",
                ..
            }
        ));
    }

    fn multi() -> Value {
        json!({"target_discovered": false,
               "target_portal": "10.52.1.11:3260", "target_iqn": IQN1, "target_lun": 2,
               "target_portals": ["10.52.1.11:3260", "10.52.2.11:3260"],
               "target_iqns": [IQN1, IQN2],
               "target_luns": [2, 2],
               "auth_method": "CHAP", "auth_username": "u", "auth_password": "s3cr3t-pw",
               "volume_id": "5a8b0000-0000-0000-0000-000000000001", "access_mode": "rw",
               "encrypted": false, "qos_specs": null, "enforce_multipath": true})
    }

    #[test]
    fn multipath_lists() {
        let p = parse(multi()).unwrap();
        assert!(p.has_target_lists);
        let t = p.targets();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].portal.to_string(), "10.52.1.11:3260");
        assert_eq!(t[0].iqn.as_str(), IQN1);
        assert_eq!(t[1].portal.to_string(), "10.52.2.11:3260");
        assert_eq!(t[1].iqn.as_str(), IQN2);
        assert_eq!(t[1].lun, Lun(2));
        assert_eq!(p.primary(), Some(&t[0]));
        assert!(p.enforce_multipath);
        assert_eq!(
            p.volume_id.as_deref(),
            Some("5a8b0000-0000-0000-0000-000000000001")
        );
        let auth = p.auth.as_ref().unwrap();
        assert_eq!(auth.username, "u");
        assert_eq!(auth.password.expose(), "s3cr3t-pw");
        assert!(auth.mutual.is_none());
    }

    #[test]
    fn lists_without_luns_use_target_lun() {
        let mut v = multi();
        v.as_object_mut().unwrap().remove("target_luns");
        let mut v = with(v, "target_lun", json!("7"));
        let p = parse(v.clone()).unwrap();
        assert!(p.targets().iter().all(|t| t.lun == Lun(7)));
        // Empty target_luns falls back too (os-brick `luns or [...]`).
        let p = parse(with(v.clone(), "target_luns", json!([]))).unwrap();
        assert!(p.targets().iter().all(|t| t.lun == Lun(7)));
        v.as_object_mut().unwrap().remove("target_lun");
        assert!(matches!(
            parse(v),
            Err(PropsError::Requires {
                key: "target_lun",
                ..
            })
        ));
    }

    #[test]
    fn lists_without_singular_triple() {
        let mut v = multi();
        for k in ["target_portal", "target_iqn"] {
            v.as_object_mut().unwrap().remove(k);
        }
        let p = parse(v).unwrap();
        assert!(p.target_portal.is_none());
        assert_eq!(p.targets().len(), 2);
    }

    #[test]
    fn lone_list_means_discovery() {
        // os-brick only uses the lists when both target_portals and target_iqns exist.
        let mut v = multi();
        v.as_object_mut().unwrap().remove("target_iqns");
        let p = parse(v).unwrap();
        assert!(!p.has_target_lists);
        assert_eq!(p.targets().len(), 1);
        assert_eq!(p.targets()[0].portal.to_string(), "10.52.1.11:3260");
    }

    #[test]
    fn mismatched_lengths() {
        let e = parse(with(multi(), "target_iqns", json!([IQN1]))).unwrap_err();
        assert!(
            matches!(
                e,
                PropsError::LengthMismatch {
                    portals: 2,
                    iqns: 1,
                    luns: 2
                }
            ),
            "{e}"
        );
        let e = parse(with(multi(), "target_luns", json!([1, 2, 3]))).unwrap_err();
        assert!(
            matches!(e, PropsError::LengthMismatch { luns: 3, .. }),
            "{e}"
        );
        let e = parse(with(
            with(multi(), "target_portals", json!([])),
            "target_iqns",
            json!([]),
        ))
        .unwrap_err();
        assert!(matches!(e, PropsError::EmptyList { .. }), "{e}");
        let e = parse(with(multi(), "target_portals", json!("10.0.0.1"))).unwrap_err();
        assert!(matches!(e, PropsError::WrongType { .. }), "{e}");
    }

    #[test]
    fn list_item_errors_name_index() {
        let e = parse(with(multi(), "target_iqns", json!([IQN1, "bad iqn"]))).unwrap_err();
        assert!(e.to_string().contains("target_iqns[1]"), "{e}");
        let e = parse(with(
            multi(),
            "target_portals",
            json!(["10.0.0.1", "10.0.0.2:x"]),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("target_portals[1]"), "{e}");
        let e = parse(with(multi(), "target_luns", json!([1, "x"]))).unwrap_err();
        assert!(e.to_string().contains("target_luns[1]"), "{e}");
    }

    #[test]
    fn multipath_ipv6_and_large_luns() {
        let v = json!({"target_portals": ["[fd00::1]:3260", "[fd00::2]"],
                       "target_iqns": [IQN1, IQN2], "target_luns": ["256", 499]});
        let p = parse(v).unwrap();
        assert_eq!(p.targets()[1].portal.to_string(), "[fd00::2]:3260");
        assert_eq!(p.targets()[0].lun.by_path_id(), "0x0100000000000000");
        assert_eq!(p.targets()[1].lun.by_path_id(), "0x01f3000000000000");
    }

    #[test]
    fn chap_session_and_mutual() {
        let v = with(
            with(multi(), "auth_username_in", json!("tgt")),
            "auth_password_in",
            json!("tgt-pw"),
        );
        let p = parse(v).unwrap();
        let (u, s) = p.auth.as_ref().unwrap().mutual.as_ref().unwrap();
        assert_eq!(u, "tgt");
        assert_eq!(s.expose(), "tgt-pw");
        let e = parse(with(multi(), "auth_username_in", json!("tgt"))).unwrap_err();
        assert!(
            matches!(
                e,
                PropsError::Requires {
                    key: "auth_password_in",
                    ..
                }
            ),
            "{e}"
        );
        let mut v = multi();
        v.as_object_mut().unwrap().remove("auth_password");
        assert!(matches!(
            parse(v),
            Err(PropsError::Requires {
                key: "auth_password",
                ..
            })
        ));
        let e = parse(with(multi(), "auth_method", json!("kerberos"))).unwrap_err();
        assert!(e.to_string().contains("auth_method"), "{e}");
        // Credentials without a method are ignored, as os-brick does.
        let p = parse(with(multi(), "auth_method", Value::Null)).unwrap();
        assert!(p.auth.is_none());
        let p = parse(with(multi(), "auth_method", json!("None"))).unwrap();
        assert!(p.auth.is_none());
    }

    #[test]
    fn discovery_chap() {
        let v = with(
            with(
                with(single(), "discovery_auth_method", json!("CHAP")),
                "discovery_auth_username",
                json!("du"),
            ),
            "discovery_auth_password",
            json!("dp-secret"),
        );
        let p = parse(v).unwrap();
        let d = p.discovery_auth.as_ref().unwrap();
        assert_eq!(d.username, "du");
        assert_eq!(d.password.expose(), "dp-secret");
        assert!(p.auth.is_none());
        let e = parse(with(single(), "discovery_auth_method", json!("CHAP"))).unwrap_err();
        assert!(
            matches!(
                e,
                PropsError::Requires {
                    key: "discovery_auth_username",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_password_not_echoed() {
        for (pw, _) in [("pw\nnode.startup = automatic", 0), ("", 0)] {
            let e = parse(with(multi(), "auth_password", json!(pw))).unwrap_err();
            assert!(
                matches!(
                    e,
                    PropsError::BadSecret {
                        key: "auth_password",
                        ..
                    }
                ),
                "{e}"
            );
            if !pw.is_empty() {
                assert!(!e.to_string().contains("pw"), "{e}");
                assert!(!format!("{e:?}").contains("pw"), "{e:?}");
            }
        }
        let long = "x".repeat(300);
        let e = parse(with(multi(), "auth_password", json!(long))).unwrap_err();
        assert!(!e.to_string().contains("xxxx"));
        let e = parse(with(multi(), "auth_password", json!(1234567))).unwrap_err();
        assert!(!e.to_string().contains("1234567"), "{e}");
        let e = parse(with(multi(), "auth_username", json!("a\u{7}b"))).unwrap_err();
        assert!(
            matches!(
                e,
                PropsError::BadUsername {
                    key: "auth_username",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn debug_never_shows_passwords() {
        let v = with(
            with(
                with(
                    with(multi(), "auth_username_in", json!("tgt")),
                    "auth_password_in",
                    json!("mutual-pw-xyz"),
                ),
                "discovery_auth_method",
                json!("CHAP"),
            ),
            "discovery_auth_username",
            json!("du"),
        );
        let v = with(v, "discovery_auth_password", json!("disc-pw-abc"));
        let p = parse(v).unwrap();
        let dbg = format!("{p:?} {p:#?}");
        for secret in ["s3cr3t-pw", "mutual-pw-xyz", "disc-pw-abc"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn access_mode_and_flags() {
        let p = parse(with(single(), "access_mode", json!("ro"))).unwrap();
        assert_eq!(p.access_mode, AccessMode::ReadOnly);
        let e = parse(with(single(), "access_mode", json!("rx"))).unwrap_err();
        assert!(
            e.to_string().contains("access_mode") && e.to_string().contains("rx"),
            "{e}"
        );
        let p = parse(with(
            with(single(), "encrypted", json!(true)),
            "enforce_multipath",
            json!(true),
        ))
        .unwrap();
        assert!(p.encrypted && p.enforce_multipath);
        let e = parse(with(single(), "encrypted", json!("yes"))).unwrap_err();
        assert!(
            matches!(e, PropsError::WrongType { ref key, .. } if key == "encrypted"),
            "{e}"
        );
    }

    #[test]
    fn device_path_and_volume_id() {
        let p = parse(with(single(), "device_path", json!("/dev/dm-3"))).unwrap();
        assert_eq!(p.device_path.as_deref(), Some("/dev/dm-3"));
        assert!(parse(with(single(), "device_path", json!("dev/sda"))).is_err());
        assert!(parse(with(single(), "device_path", json!("/dev/sda\n"))).is_err());
        let p = parse(with(single(), "volume_id", json!("abc"))).unwrap();
        assert_eq!(p.volume_id.as_deref(), Some("abc"));
        assert!(parse(with(single(), "volume_id", json!(5))).is_err());
    }

    #[test]
    fn unknown_keys_ignored() {
        let v = with(
            with(single(), "qos_specs", json!({"a": 1})),
            "frobnicate",
            json!([1, 2]),
        );
        let v = with(
            with(v, "discard", json!(true)),
            "target_discovered",
            json!(true),
        );
        assert!(parse(v).is_ok());
    }
}
