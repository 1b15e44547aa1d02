//! s390x ECKD DASD identifiers: the device's unique id ([`DasdUid`]), as the kernel
//! prints it in `/sys/bus/ccw/devices/<busid>/uid`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a DASD identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DASD uid {value:?}: {reason}")]
pub struct DasdUidError {
    pub value: String,
    pub reason: &'static str,
}

/// The unique id of a DASD volume, `VENDOR.SERIAL.SSID.UA[.VDUIT]`, as the kernel's
/// `dasd_uid_show` (drivers/s390/block/dasd_devmap.c) prints it:
///
/// * `VENDOR`: the storage server's vendor (`IBM`), 1–3 characters;
/// * `SERIAL`: the storage server's serial number (`750000000DXP71`), 1–14;
/// * `SSID`: the storage subsystem id, 4 hex digits (`%04x`);
/// * `UA`: the unit address, 2 hex digits (`%02x`), or `xx` for a HyperPAV alias
///   (a base-PAV alias shows its base device's unit address);
/// * `VDUIT`: the virtual device unit id token, up to 32 hex digits, present only
///   when the storage server reports one (z/VM minidisks, for example).
///
/// The id is empty while the device is offline: it can only be read from an online
/// device. Parsing accepts hex digits in either case and prints them the way the
/// kernel does (lower case); vendor and serial are kept as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DasdUid(String);

impl DasdUid {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The storage subsystem id token (`2300`, four lower-case hex digits).
    pub fn subsystem_id(&self) -> &str {
        self.0.split('.').nth(2).unwrap_or_default()
    }

    /// The unit address token (`05`, or `xx` for a HyperPAV alias).
    pub fn unit_address(&self) -> &str {
        self.0.split('.').nth(3).unwrap_or_default()
    }

    /// Without the virtual device unit id token: what s390-tools' `dasdinfo`
    /// exports as `ID_UID` (udev's `/dev/disk/by-id/ccw-<ID_UID>` link).
    pub fn base(&self) -> &str {
        match self.0.match_indices('.').nth(3) {
            Some((i, _)) => &self.0[..i],
            None => &self.0,
        }
    }
}

impl FromStr for DasdUid {
    type Err = DasdUidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DasdUidError {
            value: s.to_owned(),
            reason,
        };
        let parts: Vec<&str> = s.split('.').collect();
        if !(4..=5).contains(&parts.len()) {
            return Err(err(
                "expected VENDOR.SERIAL.SSID.UA or VENDOR.SERIAL.SSID.UA.VDUIT, e.g. IBM.750000000DXP71.2300.05",
            ));
        }
        let alnum = |p: &str, max: usize| {
            !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_alphanumeric())
        };
        let hex = |p: &str, min: usize, max: usize| {
            (min..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit())
        };
        if !alnum(parts[0], 3) {
            return Err(err("the vendor is 1-3 letters or digits"));
        }
        if !alnum(parts[1], 14) {
            return Err(err("the serial number is 1-14 letters or digits"));
        }
        if !hex(parts[2], 4, 4) {
            return Err(err("the subsystem id is 4 hex digits"));
        }
        let ua = parts[3].to_ascii_lowercase();
        if !(hex(&ua, 2, 2) || ua == "xx") {
            return Err(err("the unit address is 2 hex digits (or xx)"));
        }
        let mut out = format!(
            "{}.{}.{}.{ua}",
            parts[0],
            parts[1],
            parts[2].to_ascii_lowercase()
        );
        if let Some(vduit) = parts.get(4) {
            if !hex(vduit, 1, 32) {
                return Err(err("the virtual device unit id is 1-32 hex digits"));
            }
            out.push('.');
            out.push_str(&vduit.to_ascii_lowercase());
        }
        Ok(DasdUid(out))
    }
}

impl fmt::Display for DasdUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for DasdUid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DasdUid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_as_the_kernel_prints_them() {
        for (s, want) in [
            ("IBM.750000000DXP71.2300.05", "IBM.750000000DXP71.2300.05"),
            ("IBM.75000000092461.E900.8A", "IBM.75000000092461.e900.8a"),
            ("IBM.750000000DXP71.2300.xx", "IBM.750000000DXP71.2300.xx"),
            (
                "IBM.750000000DXP71.2300.05.0123456789ABCDEF0123456789abcdef",
                "IBM.750000000DXP71.2300.05.0123456789abcdef0123456789abcdef",
            ),
        ] {
            let u: DasdUid = s.parse().unwrap();
            assert_eq!(u.to_string(), want, "{s}");
        }
        let u: DasdUid = "IBM.750000000DXP71.2300.05.00ff".parse().unwrap();
        assert_eq!(u.base(), "IBM.750000000DXP71.2300.05");
        assert_eq!(u.unit_address(), "05");
        assert_eq!(u.subsystem_id(), "2300");
        let u: DasdUid = "IBM.75000000092461.E900.8A".parse().unwrap();
        assert_eq!((u.subsystem_id(), u.unit_address()), ("e900", "8a"));
        let u: DasdUid = "IBM.750000000DXP71.2300.XX".parse().unwrap();
        assert_eq!((u.base(), u.unit_address()), (u.as_str(), "xx"));
        for bad in [
            "",
            "IBM",
            "IBM.750000000DXP71.2300",
            "IBM.750000000DXP71.2300.05.00ff.1",
            "IBMX.750000000DXP71.2300.05",
            "IBM.750000000DXP71X.2300.05",
            "IBM.750000000DXP71.230.05",
            "IBM.750000000DXP71.2300.5",
            "IBM.750000000DXP71.2300.yy",
            "IBM.750000000DXP71.2300.05.",
            "IBM.750000000DXP71.2300.05.0123456789abcdef0123456789abcdef0",
            "IBM..2300.05",
            "IBM.750000000DXP71.2300.05\n",
            "IBM.75000000/DXP71.2300.05",
            " IBM.750000000DXP71.2300.05",
        ] {
            assert!(bad.parse::<DasdUid>().is_err(), "{bad:?}");
        }
        let u: DasdUid = serde_json::from_str("\"IBM.750000000DXP71.E900.05\"").unwrap();
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            "\"IBM.750000000DXP71.e900.05\""
        );
    }
}
