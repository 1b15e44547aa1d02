//! Fibre Channel and s390x identifiers: port names ([`Wwpn`]), 64-bit FCP LUNs
//! ([`FcpLun`]) and channel-subsystem bus ids ([`CcwBusId`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Lun;

/// Why an FC or s390x identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FcIdError {
    #[error("invalid WWPN {value:?}: {reason}")]
    Wwpn { value: String, reason: &'static str },
    #[error("invalid FCP LUN {value:?}: {reason}")]
    FcpLun { value: String, reason: &'static str },
    #[error("invalid CCW bus id {value:?}: {reason}")]
    CcwBusId { value: String, reason: &'static str },
}

/// A Fibre Channel world wide port (or node) name: 64 bits.
///
/// Parses what control planes and sysfs print: 16 hex digits, with or without
/// `0x`, in any case, optionally as 8 colon-separated bytes
/// (`50:05:07:63:0b:1b:41:c3`). Prints as 16 lower-case hex digits without `0x`
/// (os-brick's form in `wwpns` and `target_wwns`); [`Wwpn::sysfs_form`] gives the
/// kernel's `0x…` form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wwpn(u64);

impl Wwpn {
    pub fn new(v: u64) -> Wwpn {
        Wwpn(v)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// `0x` + 16 lower-case hex digits, as `/sys/class/fc_host/*/port_name`, zFCP
    /// sysfs directories and udev's by-path names print it.
    pub fn sysfs_form(self) -> String {
        format!("0x{:016x}", self.0)
    }
}

impl FromStr for Wwpn {
    type Err = FcIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| FcIdError::Wwpn {
            value: s.to_owned(),
            reason,
        };
        let body = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        let hex: String = if body.contains(':') {
            let parts: Vec<&str> = body.split(':').collect();
            if parts.len() != 8 || parts.iter().any(|p| p.len() != 2) {
                return Err(err("colon form must be 8 bytes of 2 hex digits"));
            }
            parts.concat()
        } else {
            body.to_owned()
        };
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err("expected 16 hex digits"));
        }
        let v = u64::from_str_radix(&hex, 16).map_err(|_| err("expected 16 hex digits"))?;
        if v == 0 {
            return Err(err("the all-zero name is not a port"));
        }
        Ok(Wwpn(v))
    }
}

impl fmt::Display for Wwpn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A 64-bit FCP LUN (the 8-byte SCSI LUN structure, SAM), as zFCP's sysfs takes it
/// (`unit_add`, the per-LUN directories): `0x` + 16 hex digits.
///
/// Built from a Linux LUN with the kernel's `int_to_scsilun` rules
/// ([`FcpLun::from_linux`]) and turned back with `scsilun_to_int`
/// ([`FcpLun::to_linux`]); no heuristics (os-brick's `_get_lun_string` changes the
/// meaning of LUNs from 256 up).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FcpLun(u64);

impl FcpLun {
    /// The FCP LUN of Linux LUN `lun` (`int_to_scsilun`).
    pub fn from_linux(lun: Lun) -> FcpLun {
        FcpLun(u64::from_be_bytes(lun.to_scsilun()))
    }

    /// The Linux LUN of this FCP LUN (`scsilun_to_int`): each 16-bit level, lowest
    /// first.
    pub fn to_linux(self) -> Lun {
        let b = self.0.to_be_bytes();
        let mut v = 0u64;
        for (i, level) in b.chunks_exact(2).enumerate() {
            v |= u64::from(u16::from_be_bytes([level[0], level[1]])) << (16 * i);
        }
        Lun(v)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl FromStr for FcpLun {
    type Err = FcIdError;
    /// `0x` + 16 hex digits (the `0x` is required: a bare number is a Linux LUN).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| FcIdError::FcpLun {
            value: s.to_owned(),
            reason,
        };
        let hex = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(|| err("expected 0x and 16 hex digits"))?;
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err("expected 0x and 16 hex digits"));
        }
        u64::from_str_radix(hex, 16)
            .map(FcpLun)
            .map_err(|_| err("expected 0x and 16 hex digits"))
    }
}

impl fmt::Display for FcpLun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

/// A channel-subsystem device bus id: `<css>.<ssid>.<devno>` (`0.0.1900`), the name
/// of a CCW device (a zFCP adapter, a DASD) under `/sys/bus/ccw/devices`.
///
/// Accepts hex digits in any case and a bare device number (`1900`, `0x1900`,
/// meaning `0.0.1900`, as s390-tools do); prints the kernel's form: lower case,
/// four digits of device number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CcwBusId {
    css: u8,
    ssid: u8,
    devno: u16,
}

impl CcwBusId {
    pub fn new(css: u8, ssid: u8, devno: u16) -> CcwBusId {
        CcwBusId { css, ssid, devno }
    }

    pub fn devno(self) -> u16 {
        self.devno
    }
}

impl FromStr for CcwBusId {
    type Err = FcIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| FcIdError::CcwBusId {
            value: s.to_owned(),
            reason,
        };
        let hex = |p: &str, max_len: usize| -> Option<u32> {
            (!p.is_empty() && p.len() <= max_len && p.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(p, 16).ok())
                .flatten()
        };
        let parts: Vec<&str> = s.split('.').collect();
        let (css, ssid, devno) = match parts.as_slice() {
            [css, ssid, devno] => (hex(css, 2), hex(ssid, 1), hex(devno, 4)),
            [devno] => {
                let d = devno
                    .strip_prefix("0x")
                    .or_else(|| devno.strip_prefix("0X"))
                    .unwrap_or(devno);
                (Some(0), Some(0), hex(d, 4))
            }
            _ => return Err(err("expected css.ssid.devno, e.g. 0.0.1900")),
        };
        let (Some(css), Some(ssid), Some(devno)) = (css, ssid, devno) else {
            return Err(err(
                "expected hex css (0-ff), ssid (0-3) and a 4-digit devno",
            ));
        };
        if ssid > 3 {
            return Err(err("the subchannel set id is 0-3"));
        }
        Ok(CcwBusId {
            css: css as u8,
            ssid: ssid as u8,
            devno: devno as u16,
        })
    }
}

impl fmt::Display for CcwBusId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}.{:x}.{:04x}", self.css, self.ssid, self.devno)
    }
}

debug_via_display!(Wwpn, FcpLun, CcwBusId);

macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
serde_via_str!(Wwpn, FcpLun, CcwBusId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wwpn_forms() {
        for s in [
            "500507630b1b41c3",
            "0x500507630B1B41C3",
            "50:05:07:63:0b:1b:41:c3",
            "0X500507630b1b41c3",
        ] {
            let w: Wwpn = s.parse().unwrap();
            assert_eq!(w.to_string(), "500507630b1b41c3", "{s}");
            assert_eq!(w.sysfs_form(), "0x500507630b1b41c3");
        }
        for bad in [
            "",
            "500507630b1b41c",
            "500507630b1b41c3a",
            "0x",
            "50:05:07:63:0b:1b:41",
            "5005:07:63:0b:1b:41:c3",
            "g00507630b1b41c3",
            "0000000000000000",
            "500507630b1b41c3\n",
            "+500507630b1b41c",
        ] {
            assert!(bad.parse::<Wwpn>().is_err(), "{bad:?}");
        }
        let w: Wwpn = serde_json::from_str("\"0x20210002AC00383D\"").unwrap();
        assert_eq!(serde_json::to_string(&w).unwrap(), "\"20210002ac00383d\"");
    }

    #[test]
    fn fcp_lun_follows_the_kernel() {
        // From the reference vectors: Linux LUN 0x400a4020 <-> FCP LUN 0x4020400a00000000.
        let l = FcpLun::from_linux(Lun(0x400a_4020));
        assert_eq!(l.to_string(), "0x4020400a00000000");
        assert_eq!(l.to_linux(), Lun(0x400a_4020));
        for (linux, fcp) in [
            (0, "0x0000000000000000"),
            (1, "0x0001000000000000"),
            (255, "0x00ff000000000000"),
            // Flat space addressing (SAM-2 LUN 300 as Linux sees it: 16384 + 300).
            (16684, "0x412c000000000000"),
            (0x0001_0002_0003_0004, "0x0004000300020001"),
        ] {
            let f = FcpLun::from_linux(Lun(linux));
            assert_eq!(f.to_string(), fcp, "{linux}");
            assert_eq!(fcp.parse::<FcpLun>().unwrap(), f);
            assert_eq!(f.to_linux(), Lun(linux));
            assert_eq!(Lun(linux).fcp_lun_string(), fcp);
        }
        for bad in ["1", "0x1", "4020400a00000000", "0x4020400a0000000g", ""] {
            assert!(bad.parse::<FcpLun>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ccw_bus_ids() {
        for (s, want) in [
            ("0.0.1900", "0.0.1900"),
            ("0.0.B100", "0.0.b100"),
            ("0.1.0a", "0.1.000a"),
            ("fe.3.ffff", "fe.3.ffff"),
            ("1900", "0.0.1900"),
            ("0x1900", "0.0.1900"),
        ] {
            assert_eq!(s.parse::<CcwBusId>().unwrap().to_string(), want, "{s}");
        }
        for bad in [
            "",
            "0.0.",
            "0.4.1900",
            "0.0.19000",
            "100.0.1900",
            "0.0.1900.1",
            "0.0.19g0",
            "../0.0.1900",
            "0.0.1900\n",
        ] {
            assert!(bad.parse::<CcwBusId>().is_err(), "{bad:?}");
        }
        assert_eq!("0.0.1900".parse::<CcwBusId>().unwrap().devno(), 0x1900);
    }
}
