//! Validated value types shared by the transports: iSCSI names, portals and LUNs;
//! NVMe identifiers (`nvme.rs`); Fibre Channel and s390x identifiers (`fc.rs`); s390x
//! DASD unique ids (`dasd.rs`).
//!
//! Every type parses from the text os-brick callers send (`FromStr`), prints in a
//! normalised form (`Display`) and round-trips through serde as that text (a [`Lun`]
//! serialises as a JSON integer and also accepts a decimal string, as os-brick does).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

// Debug shows the value as the kernel prints it (dry-run plans and logs show
// operations with Debug), not the raw number or bytes.
macro_rules! debug_via_display {
    ($($t:ident),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($t), "({})"), self)
            }
        }
    )*};
}

mod dasd;
mod fc;
mod nvme;
pub use dasd::*;
pub use fc::*;
pub use nvme::*;

/// Why a value was refused. The offending value is quoted with `{:?}` so control
/// characters in it cannot forge log lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("invalid iSCSI name {value:?}: {reason}")]
    Iqn { value: String, reason: &'static str },
    #[error("invalid portal {value:?}: {reason}")]
    Portal { value: String, reason: &'static str },
    #[error("invalid LUN {value:?}: {reason}")]
    Lun { value: String, reason: &'static str },
    #[error("invalid iSCSI interface name {value:?}: 1-64 characters of A-Z a-z 0-9 . _ : -")]
    Iface { value: String },
    #[error("invalid addressing mode {value:?}: expected one of SAM, transparent, SAM2, SAM3-flat")]
    AddressingMode { value: String },
}

/// Longest iSCSI name allowed by RFC 3720 §3.2.6.1 (in bytes).
pub const MAX_ISCSI_NAME_LEN: usize = 223;

/// Default iSCSI TCP port (RFC 3720 / IANA).
pub const DEFAULT_ISCSI_PORT: u16 = 3260;

// ---------------------------------------------------------------------------------
// Iqn
// ---------------------------------------------------------------------------------

/// An iSCSI name in one of the three RFC 3720/3721/3980 forms:
/// `iqn.yyyy-mm.<reversed domain>[:<unique>]`, `eui.<16 hex>` or `naa.<16|32 hex>`.
///
/// Only the ASCII subset of the stringprep profile is accepted (letters, digits,
/// `-`, `.`, `:`), so a name can never carry whitespace, control characters or shell
/// metacharacters. Upper-case letters are kept as given (arrays report names in the
/// case they configured; iscsiadm compares them byte-wise).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iqn(String);

impl Iqn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn iqn_err(value: &str, reason: &'static str) -> TypeError {
    TypeError::Iqn {
        value: value.to_owned(),
        reason,
    }
}

fn all_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl FromStr for Iqn {
    type Err = TypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(iqn_err(s, "empty"));
        }
        if s.len() > MAX_ISCSI_NAME_LEN {
            return Err(iqn_err(s, "longer than 223 bytes"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'))
        {
            return Err(iqn_err(
                s,
                "only ASCII letters, digits, '-', '.' and ':' are allowed",
            ));
        }
        if let Some(rest) = s.strip_prefix("iqn.") {
            // yyyy-mm.naming-authority[:unique]
            let b = rest.as_bytes();
            let date_ok = b.len() >= 8
                && b[..4].iter().all(u8::is_ascii_digit)
                && b[4] == b'-'
                && b[5..7].iter().all(u8::is_ascii_digit)
                && matches!(
                    &rest[5..7],
                    "01" | "02"
                        | "03"
                        | "04"
                        | "05"
                        | "06"
                        | "07"
                        | "08"
                        | "09"
                        | "10"
                        | "11"
                        | "12"
                )
                && b[7] == b'.';
            if !date_ok {
                return Err(iqn_err(s, "iqn. names need a yyyy-mm. date"));
            }
            let after_date = &rest[8..];
            let authority = after_date.split(':').next().unwrap_or_default();
            if authority.is_empty()
                || authority.starts_with('.')
                || authority.ends_with('.')
                || authority.contains("..")
            {
                return Err(iqn_err(
                    s,
                    "iqn. names need a reversed domain name after the date",
                ));
            }
            if after_date.ends_with(':') {
                return Err(iqn_err(s, "empty unique part after ':'"));
            }
            Ok(Iqn(s.to_owned()))
        } else if let Some(hex) = s.strip_prefix("eui.") {
            if hex.len() != 16 || !all_hex(hex) {
                return Err(iqn_err(s, "eui. names need exactly 16 hex digits"));
            }
            Ok(Iqn(s.to_owned()))
        } else if let Some(hex) = s.strip_prefix("naa.") {
            if !(hex.len() == 16 || hex.len() == 32) || !all_hex(hex) {
                return Err(iqn_err(s, "naa. names need 16 or 32 hex digits"));
            }
            Ok(Iqn(s.to_owned()))
        } else {
            Err(iqn_err(s, "must start with iqn., eui. or naa."))
        }
    }
}

impl fmt::Display for Iqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------
// Portal
// ---------------------------------------------------------------------------------

/// The host part of a [`Portal`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortalHost {
    Ip(IpAddr),
    /// An RFC 1123 host name (ASCII letters, digits, '-' and '.').
    Name(String),
}

/// An iSCSI target portal: `a.b.c.d[:port]`, `[v6addr][:port]`, a bare IPv6 address,
/// or `hostname[:port]`; the port defaults to 3260.
///
/// A trailing `,tpgt` (as printed by `iscsiadm -m discovery/session`) is accepted and
/// dropped: os-brick ignores it when matching sessions too.
///
/// `Display` is normalised: `a.b.c.d:port`, `[v6]:port` (compressed IPv6 form) or
/// `name:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Portal {
    host: PortalHost,
    port: u16,
}

fn portal_err(value: &str, reason: &'static str) -> TypeError {
    TypeError::Portal {
        value: value.to_owned(),
        reason,
    }
}

fn parse_port(value: &str, p: &str) -> Result<u16, TypeError> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(portal_err(value, "port must be decimal digits"));
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(portal_err(value, "port must be 1..=65535")),
        Ok(port) => Ok(port),
    }
}

fn valid_hostname(h: &str) -> bool {
    if h.is_empty() || h.len() > 253 {
        return false;
    }
    let h = h.strip_suffix('.').unwrap_or(h);
    let labels_ok = h.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    // All-numeric last label looks like a (bad) IPv4 address, not a host name.
    let tld_numeric = h
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    labels_ok && !tld_numeric
}

impl Portal {
    pub fn new(host: PortalHost, port: u16) -> Portal {
        Portal { host, port }
    }

    pub fn host(&self) -> &PortalHost {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The portal as it appears in udev's `/dev/disk/by-path/ip-<this>-iscsi-...`
    /// names: like `Display` but without IPv6 brackets (os-brick strips them too).
    pub fn by_path_form(&self) -> String {
        match &self.host {
            PortalHost::Ip(IpAddr::V6(a)) => format!("{a}:{}", self.port),
            _ => self.to_string(),
        }
    }
}

impl FromStr for Portal {
    type Err = TypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(portal_err(s, "empty"));
        }
        if s.len() > 300 {
            return Err(portal_err(s, "too long"));
        }
        if s.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || !b.is_ascii())
        {
            return Err(portal_err(s, "whitespace, control or non-ASCII characters"));
        }
        // Drop a trailing ",tpgt".
        let body = match s.rsplit_once(',') {
            Some((body, tpgt)) => {
                if tpgt.is_empty() || !tpgt.bytes().all(|b| b.is_ascii_digit()) || tpgt.len() > 5 {
                    return Err(portal_err(s, "text after ',' must be a numeric tpgt"));
                }
                body
            }
            None => s,
        };
        if let Some(rest) = body.strip_prefix('[') {
            let (addr, after) = rest
                .split_once(']')
                .ok_or_else(|| portal_err(s, "missing ']' after IPv6 address"))?;
            let ip: Ipv6Addr = addr
                .parse()
                .map_err(|_| portal_err(s, "bad IPv6 address"))?;
            let port = match after {
                "" => DEFAULT_ISCSI_PORT,
                _ => match after.strip_prefix(':') {
                    Some(p) => parse_port(s, p)?,
                    None => return Err(portal_err(s, "expected ':port' after ']'")),
                },
            };
            return Ok(Portal {
                host: PortalHost::Ip(IpAddr::V6(ip)),
                port,
            });
        }
        // A bare IPv6 address (two or more ':') without brackets: no port possible.
        if body.matches(':').count() >= 2 {
            let ip: Ipv6Addr = body
                .parse()
                .map_err(|_| portal_err(s, "bad IPv6 address (use [addr]:port)"))?;
            return Ok(Portal {
                host: PortalHost::Ip(IpAddr::V6(ip)),
                port: DEFAULT_ISCSI_PORT,
            });
        }
        let (host, port) = match body.split_once(':') {
            Some((h, p)) => (h, parse_port(s, p)?),
            None => (body, DEFAULT_ISCSI_PORT),
        };
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(Portal {
                host: PortalHost::Ip(IpAddr::V4(ip)),
                port,
            });
        }
        if !valid_hostname(host) {
            return Err(portal_err(
                s,
                "not an IPv4 address, [IPv6] address or host name",
            ));
        }
        Ok(Portal {
            host: PortalHost::Name(host.to_owned()),
            port,
        })
    }
}

impl fmt::Display for Portal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            PortalHost::Ip(IpAddr::V4(a)) => write!(f, "{a}:{}", self.port),
            PortalHost::Ip(IpAddr::V6(a)) => write!(f, "[{a}]:{}", self.port),
            PortalHost::Name(n) => write!(f, "{n}:{}", self.port),
        }
    }
}

// ---------------------------------------------------------------------------------
// Lun
// ---------------------------------------------------------------------------------

/// How the array encodes LUN numbers (`addressing_mode` in connection properties;
/// os-brick `linuxscsi.lun_for_addressing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AddressingMode {
    /// `SAM` (the default): the LUN is used as given.
    #[default]
    Sam,
    /// `transparent`: the LUN is used as given.
    Transparent,
    /// `SAM2`: peripheral addressing below 256, flat space addressing from 256.
    Sam2,
    /// `SAM3-flat`: flat space addressing for every LUN.
    Sam3Flat,
}

impl AddressingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressingMode::Sam => "SAM",
            AddressingMode::Transparent => "transparent",
            AddressingMode::Sam2 => "SAM2",
            AddressingMode::Sam3Flat => "SAM3-flat",
        }
    }
}

impl FromStr for AddressingMode {
    type Err = TypeError;

    /// Exact, case-sensitive names, as os-brick compares them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "SAM" => Ok(AddressingMode::Sam),
            "transparent" => Ok(AddressingMode::Transparent),
            "SAM2" => Ok(AddressingMode::Sam2),
            "SAM3-flat" => Ok(AddressingMode::Sam3Flat),
            _ => Err(TypeError::AddressingMode {
                value: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for AddressingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SCSI LUN as Linux numbers it (the `L` of `H:C:T:L`, 64 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lun(pub u64);

/// Flat space addressing flag (SAM-3 address method 01b in the first byte).
const FLAT_SPACE: u64 = 0x4000;

impl Lun {
    pub fn get(self) -> u64 {
        self.0
    }

    /// The LUN Linux will see for this array LUN (os-brick `lun_for_addressing`):
    /// `SAM3-flat` adds 16384 always, `SAM2` adds 16384 from 256 up, `SAM` and
    /// `transparent` leave it alone.
    ///
    /// Unlike os-brick, a LUN that does not fit flat space addressing (≥ 16384) is
    /// refused in the two flat modes instead of producing a different LUN.
    pub fn for_addressing(self, mode: AddressingMode) -> Result<Lun, TypeError> {
        let flat = match mode {
            AddressingMode::Sam | AddressingMode::Transparent => false,
            AddressingMode::Sam2 => self.0 >= 256,
            AddressingMode::Sam3Flat => true,
        };
        if !flat {
            return Ok(self);
        }
        if self.0 >= FLAT_SPACE {
            return Err(TypeError::Lun {
                value: self.0.to_string(),
                reason: "too large for flat space addressing (max 16383)",
            });
        }
        Ok(Lun(self.0 + FLAT_SPACE))
    }

    /// The `lun-<this>` part of udev's by-path names (os-brick `process_lun_id`,
    /// systemd `path_id` `format_lun_number`): decimal below 256, else
    /// `0x%04x%04x00000000` of the low 32 bits.
    pub fn by_path_id(self) -> String {
        if self.0 < 256 {
            self.0.to_string()
        } else {
            format!(
                "0x{:04x}{:04x}00000000",
                self.0 & 0xffff,
                (self.0 >> 16) & 0xffff
            )
        }
    }

    /// The 8-byte SCSI LUN structure (kernel `int_to_scsilun`): each 16-bit level
    /// big-endian, lowest level first.
    pub fn to_scsilun(self) -> [u8; 8] {
        let mut out = [0u8; 8];
        for (i, chunk) in out.chunks_exact_mut(2).enumerate() {
            let level = (self.0 >> (16 * i)) & 0xffff;
            chunk[0] = (level >> 8) as u8;
            chunk[1] = (level & 0xff) as u8;
        }
        out
    }

    /// `to_scsilun` as `0x` + 16 hex digits (the FCP LUN form used by zFCP sysfs).
    pub fn fcp_lun_string(self) -> String {
        let b = self.to_scsilun();
        let mut s = String::with_capacity(18);
        s.push_str("0x");
        for byte in b {
            s.push_str(&format!("{byte:02x}"));
        }
        s
    }
}

impl From<u64> for Lun {
    fn from(v: u64) -> Lun {
        Lun(v)
    }
}

impl FromStr for Lun {
    type Err = TypeError;

    /// Decimal digits only (os-brick does `int()` on string LUNs; signs, spaces and
    /// `_` separators are refused here).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TypeError::Lun {
                value: s.to_owned(),
                reason: "not a decimal number",
            });
        }
        s.parse::<u64>().map(Lun).map_err(|_| TypeError::Lun {
            value: s.to_owned(),
            reason: "larger than 64 bits",
        })
    }
}

impl fmt::Display for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Lun {
    /// A LUN from JSON: a non-negative integer or a decimal string.
    pub fn from_json(v: &serde_json::Value) -> Result<Lun, TypeError> {
        match v {
            serde_json::Value::Number(n) => n.as_u64().map(Lun).ok_or_else(|| TypeError::Lun {
                value: n.to_string(),
                reason: "not a non-negative integer",
            }),
            serde_json::Value::String(s) => s.parse(),
            other => Err(TypeError::Lun {
                value: json_type_name(other).to_owned(),
                reason: "must be an integer or a decimal string",
            }),
        }
    }
}

/// The JSON type of a value, for error messages that must not echo the value.
pub fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

// ---------------------------------------------------------------------------------
// serde
// ---------------------------------------------------------------------------------

macro_rules! serde_via_str {
    ($t:ty) => {
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
    };
}

serde_via_str!(Iqn);
serde_via_str!(Portal);
serde_via_str!(AddressingMode);

impl Serialize for Lun {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Lun {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Lun::from_json(&v).map_err(serde::de::Error::custom)
    }
}

/// Maps a sysfs `wwid` to the form udev/`scsi_id` (and multipath) use, like
/// os-brick's `get_sysfs_wwid`: the 4-character textual designator type is replaced
/// by its numeric code — `t10.`→`1`, `eui.`→`2`, `naa.`→`3`, anything else `8` —
/// followed by the rest (from the fifth character). Surrounding whitespace is
/// dropped first (the kernel pads some `wwid`s).
pub fn normalize_wwid(raw: &str) -> String {
    let wwid = raw.trim();
    let (prefix, rest) = match wwid.char_indices().nth(4) {
        Some((i, _)) => wwid.split_at(i),
        None => (wwid, ""),
    };
    let code = match prefix {
        "t10." => '1',
        "eui." => '2',
        "naa." => '3',
        _ => '8',
    };
    let mut out = String::with_capacity(rest.len() + 1);
    out.push(code);
    out.push_str(rest);
    out
}

/// A kernel block device name moor may act on: a SCSI disk (`sdX`), a device-mapper
/// node (`dm-N`), an NVMe namespace (`nvmeXnY`), a DASD (`dasdX`) or an MD array
/// (`mdN`). Whole devices only; never a path.
pub fn is_block_device_name(name: &str) -> bool {
    fn digits(s: &str) -> bool {
        !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit())
    }
    fn letters(s: &str) -> bool {
        !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_lowercase())
    }
    if let Some(r) = name.strip_prefix("sd") {
        return letters(r);
    }
    if let Some(r) = name.strip_prefix("dasd") {
        return letters(r);
    }
    if let Some(r) = name.strip_prefix("dm-") {
        return digits(r);
    }
    if let Some(r) = name.strip_prefix("md") {
        return digits(r);
    }
    if let Some(r) = name.strip_prefix("nvme") {
        return r
            .split_once('n')
            .is_some_and(|(c, n)| digits(c) && digits(n));
    }
    false
}

/// Whether `entry` is block device `disk` itself or one of its partitions
/// (`sdb` → `sdb`, `sdb1`; `nvme0n1` → `nvme0n1p2`; never `sdba` or `nvme0n12`).
pub fn is_disk_or_partition(disk: &str, entry: &str) -> bool {
    let Some(suffix) = entry.strip_prefix(disk) else {
        return false;
    };
    if suffix.is_empty() {
        return true;
    }
    let number = if disk.ends_with(|c: char| c.is_ascii_digit()) {
        match suffix.strip_prefix('p') {
            Some(n) => n,
            None => return false,
        }
    } else {
        suffix
    };
    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
}

/// An open-iscsi interface name (`default`, `iser`, `bnx2i.00:11:22:33:44:55`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfaceName(String);

impl IfaceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn default_iface() -> IfaceName {
        IfaceName("default".into())
    }
}

impl FromStr for IfaceName {
    type Err = TypeError;
    fn from_str(s: &str) -> Result<Self, TypeError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && !s.starts_with(['.', '-'])
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if ok {
            Ok(IfaceName(s.to_string()))
        } else {
            Err(TypeError::Iface {
                value: s.to_string(),
            })
        }
    }
}

impl fmt::Display for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for IfaceName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for IfaceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iqn_valid_forms() {
        for s in [
            "iqn.2010-10.org.openstack:volume-uuid",
            "iqn.2000-05.com.3pardata:20810002ac00383d",
            "iqn.1992-08.com.netapp:sn.abc:vs.3",
            "iqn.2001-04.com.example",
            "iqn.1994-05.com.redhat:5a1b2c3d4e",
            "eui.02004567A425678D",
            "naa.52004567BA64678D",
            "naa.52004567BA64678D52004567BA64678D",
        ] {
            let iqn: Iqn = s.parse().unwrap();
            assert_eq!(iqn.to_string(), s);
        }
    }

    #[test]
    fn iqn_invalid_forms() {
        let long = format!("iqn.2001-04.com.example:{}", "a".repeat(200));
        for s in [
            "",
            "iqn",
            "iqn.",
            "iqn.2001-13.com.example",
            "iqn.01-04.com.example",
            "iqn.2001-04.",
            "iqn.2001-04.com..example",
            "iqn.2001-04.com.example:",
            "iqn.2001-04.com.example:a b",
            "iqn.2001-04.com.example:a\tb",
            "iqn.2001-04.com.example:a\nb",
            "iqn.2001-04.com.example:a;rm",
            "iqn.2001-04.com.example:$(id)",
            "iqn.2001-04.com.example:a|b",
            "iqn.2001-04.com.example:a`b`",
            "iqn.2001-04.com.example:a&b",
            "iqn.2001-04.com.example:a>b",
            "iqn.2001-04.com.example:a\0b",
            "iqn.2001-04.com.exämple",
            "eui.02004567A425678",
            "eui.02004567A425678G",
            "naa.1234",
            "foo.2001-04.com.example",
            "IQN.2001-04.com.example",
            long.as_str(),
        ] {
            assert!(s.parse::<Iqn>().is_err(), "accepted {s:?}");
        }
    }

    #[test]
    fn iqn_error_quotes_value_escaped() {
        let e = "iqn.2001-04.com.x:a\nb"
            .parse::<Iqn>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("\\n"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn portal_forms() {
        let cases = [
            ("10.0.0.1", "10.0.0.1:3260", "10.0.0.1:3260"),
            ("10.0.0.1:3261", "10.0.0.1:3261", "10.0.0.1:3261"),
            ("10.0.0.1:3260,1", "10.0.0.1:3260", "10.0.0.1:3260"),
            ("[fe80::1]", "[fe80::1]:3260", "fe80::1:3260"),
            (
                "[2001:db8:0:0::1]:3262",
                "[2001:db8::1]:3262",
                "2001:db8::1:3262",
            ),
            (
                "[2001:db8::1]:3260,2",
                "[2001:db8::1]:3260",
                "2001:db8::1:3260",
            ),
            ("2001:db8::1", "[2001:db8::1]:3260", "2001:db8::1:3260"),
            (
                "array.example.com",
                "array.example.com:3260",
                "array.example.com:3260",
            ),
            ("array-1:860", "array-1:860", "array-1:860"),
        ];
        for (input, display, by_path) in cases {
            let p: Portal = input.parse().unwrap();
            assert_eq!(p.to_string(), display, "{input}");
            assert_eq!(p.by_path_form(), by_path, "{input}");
            // Display round-trips.
            assert_eq!(p.to_string().parse::<Portal>().unwrap(), p);
        }
        let p: Portal = "[::1]:99".parse().unwrap();
        assert_eq!(p.port(), 99);
        assert_eq!(p.host(), &PortalHost::Ip("::1".parse().unwrap()));
    }

    #[test]
    fn portal_invalid() {
        for s in [
            "",
            ":3260",
            "10.0.0.1:",
            "10.0.0.1:0",
            "10.0.0.1:65536",
            "10.0.0.1:32a",
            "300.1.1.1",
            "10.0.0",
            "[fe80::1",
            "[fe80::1]x",
            "[10.0.0.1]:3260",
            "[fe80::1%eth0]:3260",
            "fe80::zz",
            "host name",
            "host;rm -rf",
            "$(id):3260",
            "-host:3260",
            "10.0.0.1:3260,",
            "10.0.0.1:3260,x",
            "10.0.0.1\n",
        ] {
            assert!(s.parse::<Portal>().is_err(), "accepted {s:?}");
        }
    }

    #[test]
    fn portal_serde() {
        let p: Portal = serde_json::from_str("\"[2001:db8::1]:3260\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"[2001:db8::1]:3260\"");
        assert!(serde_json::from_str::<Portal>("\"a b\"").is_err());
    }

    #[test]
    fn lun_from_int_and_string() {
        assert_eq!(serde_json::from_str::<Lun>("1").unwrap(), Lun(1));
        assert_eq!(serde_json::from_str::<Lun>("\"1\"").unwrap(), Lun(1));
        assert_eq!(serde_json::from_str::<Lun>("\"0300\"").unwrap(), Lun(300));
        for bad in [
            "-1",
            "1.5",
            "\"-1\"",
            "\" 1\"",
            "\"1x\"",
            "\"\"",
            "null",
            "true",
            "[1]",
            "\"18446744073709551616\"",
        ] {
            assert!(serde_json::from_str::<Lun>(bad).is_err(), "accepted {bad}");
        }
        assert_eq!(serde_json::to_string(&Lun(7)).unwrap(), "7");
        assert_eq!("42".parse::<Lun>().unwrap().to_string(), "42");
    }

    #[test]
    fn addressing_mode_names() {
        for m in [
            AddressingMode::Sam,
            AddressingMode::Transparent,
            AddressingMode::Sam2,
            AddressingMode::Sam3Flat,
        ] {
            assert_eq!(m.as_str().parse::<AddressingMode>().unwrap(), m);
        }
        for bad in ["sam2", "SAM3", "sam", "", "1"] {
            assert!(bad.parse::<AddressingMode>().is_err(), "accepted {bad}");
        }
        assert_eq!(AddressingMode::default(), AddressingMode::Sam);
    }

    // Hard-coded vectors from lun_formatting.json (os-brick 46ca08f).
    #[test]
    fn lun_vectors_hardcoded() {
        for (lun, want) in [
            (2, "2"),
            (255, "255"),
            (256, "0x0100000000000000"),
            (370, "0x0172000000000000"),
            (499, "0x01f3000000000000"),
        ] {
            assert_eq!(Lun(lun).by_path_id(), want);
        }
        for (lun, want) in [(1, 1), (100, 100), (256, 16640), (1010, 17394)] {
            assert_eq!(
                Lun(lun).for_addressing(AddressingMode::Sam2).unwrap(),
                Lun(want)
            );
        }
        for (lun, want) in [(0, 16384), (100, 16484), (256, 16640), (1010, 17394)] {
            assert_eq!(
                Lun(lun).for_addressing(AddressingMode::Sam3Flat).unwrap(),
                Lun(want)
            );
        }
        for m in [AddressingMode::Sam, AddressingMode::Transparent] {
            assert_eq!(Lun(1010).for_addressing(m).unwrap(), Lun(1010));
            assert_eq!(Lun(1 << 40).for_addressing(m).unwrap(), Lun(1 << 40));
        }
        assert_eq!(Lun(1).fcp_lun_string(), "0x0001000000000000");
        assert_eq!(Lun(16640).fcp_lun_string(), "0x4100000000000000");
        assert_eq!(Lun(0x400a_4020).fcp_lun_string(), "0x4020400a00000000");
        assert_eq!(
            Lun(0x400a_4020).to_scsilun(),
            [0x40, 0x20, 0x40, 0x0a, 0, 0, 0, 0]
        );
        // FC by-path with SAM2 LUN 300 => lun-0x412c000000000000.
        let l = Lun(300).for_addressing(AddressingMode::Sam2).unwrap();
        assert_eq!(l.by_path_id(), "0x412c000000000000");
    }

    #[test]
    fn lun_flat_range() {
        assert_eq!(
            Lun(16383).for_addressing(AddressingMode::Sam3Flat).unwrap(),
            Lun(32767)
        );
        assert!(Lun(16384).for_addressing(AddressingMode::Sam3Flat).is_err());
        assert!(Lun(16384).for_addressing(AddressingMode::Sam2).is_err());
        assert!(Lun(u64::MAX).for_addressing(AddressingMode::Sam2).is_err());
        assert_eq!(
            Lun(255).for_addressing(AddressingMode::Sam2).unwrap(),
            Lun(255)
        );
    }

    fn leading_u64(key: &str) -> u64 {
        let digits: String = key.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    }

    /// Every vector of `lun_formatting.json` that concerns these functions, when the
    /// shared vector folder is present.
    #[test]
    fn lun_vectors_from_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/os-brick-vectors/lun_formatting.json");
        let alt = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/os-brick-vectors/lun_formatting.json");
        let Some(text) = [path, alt]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
        else {
            eprintln!("lun_formatting.json not found; file vectors skipped");
            return;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let obj = v.as_object().unwrap();
        let mut checked = 0;
        for (section, body) in obj {
            if section.starts_with("process_lun_id") {
                for (k, want) in body["cases"].as_object().unwrap() {
                    let got = Lun(leading_u64(k)).by_path_id();
                    let want = match want {
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::String(s) => s.clone(),
                        _ => panic!("bad vector {want}"),
                    };
                    assert_eq!(got, want, "process_lun_id({k})");
                    checked += 1;
                }
            } else if section.starts_with("lun_for_addressing") {
                for (mode, cases) in body.as_object().unwrap() {
                    let Ok(m) = mode.parse::<AddressingMode>() else {
                        continue;
                    };
                    for (k, want) in cases.as_object().unwrap() {
                        let got = Lun(leading_u64(k)).for_addressing(m).unwrap();
                        assert_eq!(got.0, want.as_u64().unwrap(), "{mode} {k}");
                        checked += 1;
                    }
                }
            } else if section.starts_with("proper FCP LUN") {
                for (k, want) in body["examples"].as_object().unwrap() {
                    let spec = k.trim_start_matches("Linux LUN ");
                    let spec = spec.split_whitespace().next().unwrap();
                    let n = match spec.strip_prefix("0x") {
                        Some(h) => u64::from_str_radix(h, 16).unwrap(),
                        None => spec.parse().unwrap(),
                    };
                    assert_eq!(Lun(n).fcp_lun_string(), want.as_str().unwrap(), "{k}");
                    checked += 1;
                }
            } else if section.starts_with("FC by-path with addressing_mode") {
                let props = &body["props"];
                let m: AddressingMode = props["addressing_mode"].as_str().unwrap().parse().unwrap();
                let lun = Lun::from_json(&props["target_lun"])
                    .unwrap()
                    .for_addressing(m)
                    .unwrap();
                let want = body["expected path"].as_str().unwrap();
                assert!(
                    want.ends_with(&format!("-lun-{}", lun.by_path_id())),
                    "{want}"
                );
                checked += 1;
            }
        }
        // 6 process_lun_id + 8 addressing + 3 FCP + 1 by-path in the 46ca08f file.
        assert!(checked >= 18, "only {checked} vectors checked");
    }
}
