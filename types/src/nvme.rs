//! NVMe-oF identifiers: qualified names ([`Nqn`]), namespace identifiers
//! ([`NvmeUuid`], [`Nguid`], [`Nsid`]), transports, controller names and MD array
//! names for replicated volumes.
//!
//! Canonical forms follow what the Linux kernel prints in sysfs, so a value parsed
//! from `connection_info` compares equal to the one read back from the host:
//!
//! * `uuid`, `nguid` and `hostid` are printed with `%pU` (`drivers/nvme/host/
//!   sysfs.c`: `uuid_show`, `nguid_show`, `nvme_sysfs_show_hostid`): 16 bytes as
//!   lower-case hex in 8-4-4-4-12 groups. An NGUID is not a UUID, but the kernel
//!   formats it the same way, so [`Nguid`]'s `Display` is that form too
//!   ([`Nguid::hex`] gives the 32-digit form `nvme id-ns` prints).
//! * `nsid` is printed as an unsigned decimal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an NVMe identifier was refused. Values are quoted with `{:?}` so control
/// characters cannot forge log lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NvmeIdError {
    #[error("invalid NQN {value:?}: {reason}")]
    Nqn { value: String, reason: &'static str },
    #[error("invalid {what} {value:?}: {reason}")]
    Id128 {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid namespace id {value:?}: {reason}")]
    Nsid { value: String, reason: &'static str },
    #[error("unsupported NVMe-oF transport {value:?}: expected tcp or rdma")]
    Transport { value: String },
    #[error("invalid NVMe controller name {value:?}: expected nvmeN")]
    Controller { value: String },
    #[error("invalid MD array name {value:?}: {reason}")]
    MdName { value: String, reason: &'static str },
}

/// Longest NQN (NVMe Base Specification, "NVMe Qualified Names": 223 bytes).
pub const MAX_NQN_LEN: usize = 223;

/// Default NVMe/TCP and NVMe/RDMA I/O port (IANA).
pub const DEFAULT_NVMF_PORT: u16 = 4420;

/// The well-known prefix of UUID-based NQNs.
pub const UUID_NQN_PREFIX: &str = "nqn.2014-08.org.nvmexpress:uuid:";

// ---------------------------------------------------------------------------------
// Nqn
// ---------------------------------------------------------------------------------

/// An NVMe Qualified Name: `nqn.yyyy-mm.<reversed domain>[:<user string>]`, which
/// includes the UUID form `nqn.2014-08.org.nvmexpress:uuid:<uuid>` (its UUID is
/// checked) and the discovery NQN `nqn.2014-08.org.nvmexpress.discovery`.
///
/// At most 223 bytes; no whitespace, control characters or commas (the kernel's
/// fabrics options are a comma-separated `key=value` string, so a comma would inject
/// options). Kept byte-for-byte as given: targets and the kernel compare NQNs
/// exactly, so case is never changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nqn(String);

impl Nqn {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `nqn.2014-08.org.nvmexpress:uuid:<uuid>` (how nvme-cli and os-brick derive
    /// a host NQN from the system UUID).
    pub fn from_uuid(uuid: &NvmeUuid) -> Nqn {
        Nqn(format!("{UUID_NQN_PREFIX}{uuid}"))
    }

    /// The UUID of a UUID-form NQN.
    pub fn uuid(&self) -> Option<NvmeUuid> {
        self.0.strip_prefix(UUID_NQN_PREFIX)?.parse().ok()
    }
}

fn nqn_err(value: &str, reason: &'static str) -> NvmeIdError {
    NvmeIdError::Nqn {
        value: value.to_owned(),
        reason,
    }
}

fn valid_reverse_domain(d: &str) -> bool {
    !d.is_empty()
        && d.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl FromStr for Nqn {
    type Err = NvmeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(nqn_err(s, "empty"));
        }
        if s.len() > MAX_NQN_LEN {
            return Err(nqn_err(s, "longer than 223 bytes"));
        }
        if s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',')
        {
            return Err(nqn_err(
                s,
                "whitespace, control characters and commas are not allowed",
            ));
        }
        let Some(rest) = s.strip_prefix("nqn.") else {
            return Err(nqn_err(s, "must start with nqn."));
        };
        let b = rest.as_bytes();
        let date_ok = b.len() >= 8
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit)
            && rest[5..7]
                .parse::<u8>()
                .is_ok_and(|m| (1..=12).contains(&m))
            && b[7] == b'.';
        if !date_ok {
            return Err(nqn_err(s, "expected nqn.yyyy-mm. followed by a domain"));
        }
        let after_date = &rest[8..];
        let (domain, user) = match after_date.split_once(':') {
            Some((d, u)) => (d, Some(u)),
            None => (after_date, None),
        };
        if !valid_reverse_domain(domain) {
            return Err(nqn_err(
                s,
                "expected a reversed domain name (letters, digits, '-', '.') after the date",
            ));
        }
        if user == Some("") {
            return Err(nqn_err(s, "empty name after ':'"));
        }
        if let Some(u) = s.strip_prefix("nqn.2014-08.org.nvmexpress:uuid:")
            && !is_hyphenated_uuid(u)
        {
            return Err(nqn_err(
                s,
                "a UUID-form NQN needs a hyphenated UUID (8-4-4-4-12 hex digits)",
            ));
        }
        Ok(Nqn(s.to_owned()))
    }
}

impl fmt::Display for Nqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------
// 128-bit identifiers: namespace UUID, NGUID
// ---------------------------------------------------------------------------------

fn is_hyphenated_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// 32 hex digits, either bare or hyphenated 8-4-4-4-12, any case; not all zero
/// (the NVMe spec's "not reported").
fn parse_id128(what: &'static str, s: &str) -> Result<[u8; 16], NvmeIdError> {
    let err = |reason| NvmeIdError::Id128 {
        what,
        value: s.to_owned(),
        reason,
    };
    let hex: Vec<u8> = if is_hyphenated_uuid(s) {
        s.bytes().filter(|&b| b != b'-').collect()
    } else if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        s.bytes().collect()
    } else {
        return Err(err(
            "expected 32 hex digits, bare or hyphenated as 8-4-4-4-12",
        ));
    };
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
        out[i] = digit(pair[0]) << 4 | digit(pair[1]);
    }
    if out == [0u8; 16] {
        return Err(err("all zeros means the identifier is not set"));
    }
    Ok(out)
}

fn fmt_id128(b: &[u8; 16], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            f.write_str("-")?;
        }
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

/// A namespace UUID (also used for the NVMe host id): parsed from 32 hex digits,
/// bare or hyphenated, any case; printed as the kernel's `uuid` attribute shows it
/// (`%pU`: lower-case, 8-4-4-4-12). The nil UUID is refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NvmeUuid([u8; 16]);

impl NvmeUuid {
    pub fn from_bytes(b: [u8; 16]) -> Result<NvmeUuid, NvmeIdError> {
        if b == [0u8; 16] {
            return Err(NvmeIdError::Id128 {
                what: "UUID",
                value: "00000000-0000-0000-0000-000000000000".into(),
                reason: "all zeros means the identifier is not set",
            });
        }
        Ok(NvmeUuid(b))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl FromStr for NvmeUuid {
    type Err = NvmeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_id128("UUID", s).map(NvmeUuid)
    }
}

impl fmt::Display for NvmeUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_id128(&self.0, f)
    }
}

/// A namespace globally unique identifier (NGUID, 16 bytes). Parsed like
/// [`NvmeUuid`]; `Display` is the kernel's `nguid` attribute form (`%pU`:
/// lower-case 8-4-4-4-12, e.g. `f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nguid([u8; 16]);

debug_via_display!(NvmeUuid, Nguid);

impl Nguid {
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// 32 lower-case hex digits without hyphens (`nvme id-ns`, the `eui.` wwid).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl FromStr for Nguid {
    type Err = NvmeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_id128("NGUID", s).map(Nguid)
    }
}

impl fmt::Display for Nguid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_id128(&self.0, f)
    }
}

// ---------------------------------------------------------------------------------
// Nsid
// ---------------------------------------------------------------------------------

/// A namespace id: 1..=0xFFFFFFFE (0 is invalid, 0xFFFFFFFF is the broadcast id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nsid(u32);

impl Nsid {
    pub fn new(v: u64) -> Result<Nsid, NvmeIdError> {
        match u32::try_from(v) {
            Ok(n) if n != 0 && n != u32::MAX => Ok(Nsid(n)),
            _ => Err(NvmeIdError::Nsid {
                value: v.to_string(),
                reason: "must be 1..=4294967294",
            }),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// From JSON: a positive integer or a decimal string (os-brick sends both).
    pub fn from_json(v: &serde_json::Value) -> Result<Nsid, NvmeIdError> {
        match v {
            serde_json::Value::Number(n) => match n.as_u64() {
                Some(n) => Nsid::new(n),
                None => Err(NvmeIdError::Nsid {
                    value: n.to_string(),
                    reason: "not a positive integer",
                }),
            },
            serde_json::Value::String(s) => s.parse(),
            other => Err(NvmeIdError::Nsid {
                value: crate::json_type_name(other).to_owned(),
                reason: "must be an integer or a decimal string",
            }),
        }
    }
}

impl FromStr for Nsid {
    type Err = NvmeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NvmeIdError::Nsid {
                value: s.to_owned(),
                reason: "not a decimal number",
            });
        }
        let v: u64 = s.parse().map_err(|_| NvmeIdError::Nsid {
            value: s.to_owned(),
            reason: "not a decimal number",
        })?;
        Nsid::new(v).map_err(|_| NvmeIdError::Nsid {
            value: s.to_owned(),
            reason: "must be 1..=4294967294",
        })
    }
}

impl fmt::Display for Nsid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

// ---------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------

/// An NVMe-oF transport moor connects over, named as the kernel names it (the
/// controller's `transport` attribute, `nvme connect -t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NvmeTransport {
    Tcp,
    Rdma,
}

impl NvmeTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            NvmeTransport::Tcp => "tcp",
            NvmeTransport::Rdma => "rdma",
        }
    }
}

impl FromStr for NvmeTransport {
    type Err = NvmeIdError;
    /// Exactly `tcp` or `rdma` (the connector maps os-brick's spellings first).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(NvmeTransport::Tcp),
            "rdma" => Ok(NvmeTransport::Rdma),
            _ => Err(NvmeIdError::Transport {
                value: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for NvmeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------
// Controller name
// ---------------------------------------------------------------------------------

/// An NVMe controller's kernel name, `nvme<instance>` (`/sys/class/nvme/nvmeN`,
/// `/dev/nvmeN`). No leading zeros: the kernel prints `nvme%d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NvmeController(u32);

impl NvmeController {
    pub fn new(instance: u32) -> NvmeController {
        NvmeController(instance)
    }

    pub fn instance(self) -> u32 {
        self.0
    }
}

impl FromStr for NvmeController {
    type Err = NvmeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || NvmeIdError::Controller {
            value: s.to_owned(),
        };
        let digits = s.strip_prefix("nvme").ok_or_else(err)?;
        if digits.is_empty()
            || digits.len() > 10
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return Err(err());
        }
        digits.parse().map(NvmeController).map_err(|_| err())
    }
}

impl fmt::Display for NvmeController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nvme{}", self.0)
    }
}

// ---------------------------------------------------------------------------------
// MD array name (replicated volumes)
// ---------------------------------------------------------------------------------

/// The name of an MD RAID1 array assembled from NVMe-oF replicas (os-brick's
/// `alias`, the array is `/dev/md/<name>`): 1-32 characters of `A-Z a-z 0-9 . _ -`
/// (mdadm stores at most 32 bytes of name), not starting with `.` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MdName(String);

impl MdName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for MdName {
    type Err = NvmeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| NvmeIdError::MdName {
            value: s.to_owned(),
            reason,
        };
        if s.is_empty() || s.len() > 32 {
            return Err(err("must be 1-32 characters"));
        }
        if s.starts_with(['.', '-']) {
            return Err(err("must not start with '.' or '-'"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(err("only A-Z a-z 0-9 . _ - are allowed"));
        }
        Ok(MdName(s.to_owned()))
    }
}

impl fmt::Display for MdName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------
// serde: every type travels as its canonical text
// ---------------------------------------------------------------------------------

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

serde_via_str!(Nqn, NvmeUuid, Nguid, NvmeTransport, NvmeController, MdName);

impl Serialize for Nsid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Nsid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Nsid::from_json(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_kernel_form() {
        let u: NvmeUuid = "0B7C1C55-0A1E-4A43-9D37-5C1F0E3A1111".parse().unwrap();
        assert_eq!(
            format!("{u:?}"),
            "NvmeUuid(0b7c1c55-0a1e-4a43-9d37-5c1f0e3a1111)"
        );
        let g: Nguid = "f0e1d2c3b4a5968778695a4b3c2d1e0f".parse().unwrap();
        assert_eq!(
            format!("{g:?}"),
            "Nguid(f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f)"
        );
    }

    #[test]
    fn nqn_valid_forms() {
        for s in [
            "nqn.2014-08.org.nvmexpress:uuid:4ca8f5f1-f6fd-4ba5-bd6a-a1b2c3d4e5f6",
            "nqn.2014-08.org.nvmexpress:uuid:9126E942-396D-11E7-B0B7-A81E84C186D1",
            "nqn.2016-06.io.spdk:cnode1",
            "nqn.1992-08.com.netapp:sn.4f9a:subsystem.vol_1",
            "nqn.2010-06.com.purestorage:flasharray.12ab34cd",
            "nqn.1988-11.com.dell:powerstore:00:a1b2c3",
            "nqn.2014-08.org.nvmexpress.discovery",
            "nqn.2023-01.example-corp.com:host=a;b(c)",
        ] {
            let n: Nqn = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            // Kept exactly as given (no case folding).
            assert_eq!(n.to_string(), s);
            assert_eq!(n.as_str(), s);
        }
    }

    #[test]
    fn nqn_invalid_forms() {
        let long = format!("nqn.2014-08.com.example:{}", "a".repeat(200));
        assert_eq!(long.len(), 224);
        let max = format!("nqn.2014-08.com.example:{}", "a".repeat(199));
        assert!(max.parse::<Nqn>().is_ok());
        for s in [
            "",
            "nqn",
            "nqn.",
            "nqn.2014-08",
            "nqn.2014-08.",
            "nqn.2014-13.com.example:x",
            "nqn.14-08.com.example:x",
            "nqn.2014-08.com..example:x",
            "nqn.2014-08..com:x",
            "nqn.2014-08.com.example:",
            "nqn.2014-08.com.example:a b",
            "nqn.2014-08.com.example:a\tb",
            "nqn.2014-08.com.example:a\nb",
            "nqn.2014-08.com.example:a,transport=rdma",
            "nqn.2014-08.com.example:a\0b",
            "nqn.2014-08.com.exa_mple:x",
            "NQN.2014-08.com.example:x",
            "iqn.2014-08.com.example:x",
            // Cinder's nvmet default (`nqn.nvme-subsystem-1-<uuid>`) is not an NQN.
            "nqn.nvme-subsystem-1-465ef6ab-00d2-4f15-a1ea-4b7d6e4ec5b5",
            "nqn.2014-08.org.nvmexpress:uuid:not-a-uuid",
            "nqn.2014-08.org.nvmexpress:uuid:4ca8f5f1f6fd4ba5bd6aa1b2c3d4e5f6",
            long.as_str(),
        ] {
            assert!(s.parse::<Nqn>().is_err(), "accepted {s:?}");
        }
        let e = "nqn.2014-08.com.x:a\nb"
            .parse::<Nqn>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("\\n") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn nqn_uuid_form() {
        let u: NvmeUuid = "9126E942-396D-11E7-B0B7-A81E84C186D1".parse().unwrap();
        let n = Nqn::from_uuid(&u);
        assert_eq!(
            n.as_str(),
            "nqn.2014-08.org.nvmexpress:uuid:9126e942-396d-11e7-b0b7-a81e84c186d1"
        );
        assert_eq!(n.uuid(), Some(u));
        assert_eq!(n.as_str().parse::<Nqn>().unwrap(), n);
        let spdk: Nqn = "nqn.2016-06.io.spdk:cnode1".parse().unwrap();
        assert_eq!(spdk.uuid(), None);
    }

    #[test]
    fn uuid_normalises() {
        let want = "c20aba21-6ef6-446b-b374-45733b4883ba";
        for s in [
            "c20aba21-6ef6-446b-b374-45733b4883ba",
            "C20ABA21-6EF6-446B-B374-45733B4883BA",
            "c20aba216ef6446bb37445733b4883ba",
            "C20aba216ef6446bB37445733b4883BA",
        ] {
            let u: NvmeUuid = s.parse().unwrap();
            assert_eq!(u.to_string(), want, "{s}");
        }
        for bad in [
            "",
            "c20aba21-6ef6-446b-b374-45733b4883b",
            "c20aba21-6ef6-446b-b374-45733b4883bax",
            "c20aba216-ef6-446b-b374-45733b4883ba",
            "c20aba21_6ef6_446b_b374_45733b4883ba",
            "{c20aba21-6ef6-446b-b374-45733b4883ba}",
            "g20aba21-6ef6-446b-b374-45733b4883ba",
            " c20aba21-6ef6-446b-b374-45733b4883ba",
            "00000000-0000-0000-0000-000000000000",
            "00000000000000000000000000000000",
        ] {
            assert!(bad.parse::<NvmeUuid>().is_err(), "accepted {bad:?}");
        }
        assert!(NvmeUuid::from_bytes([0; 16]).is_err());
        let u = NvmeUuid::from_bytes([0xab; 16]).unwrap();
        assert_eq!(u.to_string(), "abababab-abab-abab-abab-abababababab");
    }

    #[test]
    fn nguid_kernel_form() {
        // `nvme id-ns` prints an NGUID as 32 hex digits; sysfs `nguid` uses %pU.
        let g: Nguid = "F0E1D2C3B4A5968778695A4B3C2D1E0F".parse().unwrap();
        assert_eq!(g.to_string(), "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f");
        assert_eq!(g.hex(), "f0e1d2c3b4a5968778695a4b3c2d1e0f");
        let h: Nguid = "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f".parse().unwrap();
        assert_eq!(g, h);
        assert!("0".repeat(32).parse::<Nguid>().is_err());
        let e = "xyz".parse::<Nguid>().unwrap_err().to_string();
        assert!(e.contains("NGUID"), "{e}");
    }

    #[test]
    fn nsid_range_and_json() {
        assert_eq!("1".parse::<Nsid>().unwrap().get(), 1);
        assert_eq!("4294967294".parse::<Nsid>().unwrap().get(), u32::MAX - 1);
        for bad in ["0", "4294967295", "4294967296", "-1", "1a", "", " 1", "+1"] {
            assert!(bad.parse::<Nsid>().is_err(), "accepted {bad:?}");
        }
        use serde_json::json;
        assert_eq!(Nsid::from_json(&json!(10)).unwrap().get(), 10);
        assert_eq!(Nsid::from_json(&json!("10")).unwrap().get(), 10);
        for bad in [json!(0), json!(-1), json!(1.5), json!(true), json!([1])] {
            assert!(Nsid::from_json(&bad).is_err(), "accepted {bad}");
        }
        assert_eq!(serde_json::to_string(&Nsid(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<Nsid>("\"7\"").unwrap(), Nsid(7));
    }

    #[test]
    fn transport_and_controller() {
        assert_eq!("tcp".parse::<NvmeTransport>().unwrap(), NvmeTransport::Tcp);
        assert_eq!(NvmeTransport::Rdma.to_string(), "rdma");
        for bad in ["TCP", "RoCEv2", "fc", "loop", ""] {
            assert!(bad.parse::<NvmeTransport>().is_err(), "accepted {bad:?}");
        }
        let c: NvmeController = "nvme12".parse().unwrap();
        assert_eq!((c.instance(), c.to_string().as_str()), (12, "nvme12"));
        assert_eq!("nvme0".parse::<NvmeController>().unwrap().instance(), 0);
        for bad in [
            "nvme",
            "nvme01",
            "nvme0n1",
            "nvme0c1n1",
            "/dev/nvme0",
            "nvme-1",
            "sda",
        ] {
            assert!(bad.parse::<NvmeController>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn md_names() {
        for ok in ["vol-1", "md_a.b", "a", &"x".repeat(32)] {
            assert_eq!(ok.parse::<MdName>().unwrap().as_str(), ok);
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "../x", &"x".repeat(33)] {
            assert!(bad.parse::<MdName>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn serde_round_trips() {
        let n: Nqn = serde_json::from_str("\"nqn.2016-06.io.spdk:cnode1\"").unwrap();
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            "\"nqn.2016-06.io.spdk:cnode1\""
        );
        let u: NvmeUuid = serde_json::from_str("\"C20ABA216EF6446BB37445733B4883BA\"").unwrap();
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            "\"c20aba21-6ef6-446b-b374-45733b4883ba\""
        );
        assert!(serde_json::from_str::<Nqn>("\"nqn.x y\"").is_err());
        assert!(serde_json::from_str::<NvmeController>("\"nvme0n1\"").is_err());
    }
}
