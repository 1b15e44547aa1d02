//! Volume encryption (os-brick encryptors, reference §3): the Cinder encryption
//! metadata, the passphrase derived from the key manager's secret, the
//! device-mapper name of the decrypted mapping, and ([`Encryptor`]) opening,
//! closing, resizing and rekeying volumes through moord's `luks.*` operations.
//!
//! [`EncryptionProps::from_metadata`] validates the metadata object (`provider`,
//! `control_location`, `cipher`, `key_size`, `encryption_key_id`; every other key is
//! ignored) and refuses invalid values with an [`EncryptionError`] naming the key.
//! [`Passphrase::derive`] turns a secret into the LUKS passphrase exactly as
//! os-brick's `get_passphrase_from_secret`; [`mapping_name`] derives
//! `crypt-<volume_id>`.
//!
//! Secrets: a [`Passphrase`] is zeroized on drop, redacted in `Debug`, has no
//! `Display` and no `Serialize`; its bytes ([`Passphrase::as_bytes`]) only leave
//! the process inside a `luks.*` request, which moord hands to cryptsetup on stdin
//! (`--key-file=-`). No error message ever contains secret bytes.

use std::fmt;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::str::FromStr;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::types::json_type_name;

mod dmcrypt;
pub use dmcrypt::*;

/// Longest cipher specification accepted (`aes-xts-plain64`, `aes-cbc-essiv:sha256`).
pub const MAX_CIPHER_LEN: usize = 64;

/// Largest `key_size` accepted, in bits.
pub const MAX_KEY_SIZE_BITS: u32 = 4096;

/// Longest `encryption_key_id` accepted (Castellan ids are UUIDs).
pub const MAX_KEY_ID_LEN: usize = 255;

/// Longest secret accepted, in bytes (before hex encoding). Key-manager keys are
/// 16-64 bytes; passphrases are short text.
pub const MAX_SECRET_LEN: usize = 4096;

/// Prefix of every mapping name (os-brick's `crypt-`).
pub const MAPPING_PREFIX: &str = "crypt-";

/// Longest device-mapper name: `DM_NAME_LEN` is 128 including the terminating NUL.
pub const MAX_MAPPING_NAME_LEN: usize = 127;

/// Why encryption metadata, a secret or a volume id was refused. Offending values
/// are quoted with `{:?}` (so control characters cannot forge log lines); secret
/// bytes are never part of a message.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error("encryption metadata must be a JSON object, got {found}")]
    NotAnObject { found: &'static str },
    #[error("encryption metadata {key} must be {expected}, got {found}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("encryption metadata {key} has invalid value {value:?}: expected {expected}")]
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "invalid secret type {value:?}: expected symmetric, passphrase, opaque, private, public or certificate"
    )]
    BadSecretKind { value: String },
    /// The secret itself is never part of the message.
    #[error("the {kind} secret is not usable: {reason}")]
    BadSecret {
        kind: SecretKind,
        reason: &'static str,
    },
    #[error("cannot read the secret from {path:?}: {source}")]
    SecretRead {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid volume id {value:?} for a mapping name: {reason}")]
    BadVolumeId { value: String, reason: &'static str },
}

// ---------------------------------------------------------------------------------
// Provider and control location
// ---------------------------------------------------------------------------------

/// The front-end encryptor (os-brick `FORMAT_TO_FRONTEND_ENCRYPTOR_MAP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// `luks`: LUKS1 (`LuksEncryptor`, `luksFormat --type luks1`).
    Luks,
    /// `luks2`: LUKS2 (`Luks2Encryptor`, `luksFormat --type luks2`).
    Luks2,
    /// `plain`: plain dm-crypt (`CryptsetupEncryptor`, deprecated in os-brick).
    Plain,
}

/// Legacy class-path provider names os-brick maps to a format (with a warning), and
/// the class paths of its own encryptors. `None` is the no-op encryptor. Both
/// spellings of the no-op class (`NoopEncryptor`, `NoOpEncryptor`) are accepted.
pub const LEGACY_PROVIDERS: &[(&str, Option<Provider>)] = &[
    (
        "nova.volume.encryptors.luks.LuksEncryptor",
        Some(Provider::Luks),
    ),
    (
        "nova.volume.encryptors.cryptsetup.CryptsetupEncryptor",
        Some(Provider::Plain),
    ),
    ("nova.volume.encryptors.nop.NoopEncryptor", None),
    ("nova.volume.encryptors.nop.NoOpEncryptor", None),
    (
        "os_brick.encryptors.luks.LuksEncryptor",
        Some(Provider::Luks),
    ),
    (
        "os_brick.encryptors.luks.Luks2Encryptor",
        Some(Provider::Luks2),
    ),
    (
        "os_brick.encryptors.cryptsetup.CryptsetupEncryptor",
        Some(Provider::Plain),
    ),
    ("os_brick.encryptors.nop.NoopEncryptor", None),
    ("os_brick.encryptors.nop.NoOpEncryptor", None),
    ("LuksEncryptor", Some(Provider::Luks)),
    ("Luks2Encryptor", Some(Provider::Luks2)),
    ("CryptsetupEncryptor", Some(Provider::Plain)),
    ("NoOpEncryptor", None),
];

const PROVIDER_EXPECTED: &str = "luks, luks2, plain, none or a known os-brick/nova encryptor class name \
     (moor does not load other classes)";

impl Provider {
    /// The format name (`luks`, `luks2`, `plain`).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Luks => "luks",
            Provider::Luks2 => "luks2",
            Provider::Plain => "plain",
        }
    }

    /// Maps a `provider` value as os-brick does: a format name, `none`, or a legacy
    /// class path from [`LEGACY_PROVIDERS`] (case-sensitive, like os-brick's maps).
    /// `Ok(None)` is the no-op encryptor. Any other name is refused: os-brick would
    /// import it as an out-of-tree class, moor does not.
    pub fn from_name(name: &str) -> Result<Option<Provider>, EncryptionError> {
        match name {
            "luks" => return Ok(Some(Provider::Luks)),
            "luks2" => return Ok(Some(Provider::Luks2)),
            "plain" => return Ok(Some(Provider::Plain)),
            "none" => return Ok(None),
            _ => {}
        }
        LEGACY_PROVIDERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| EncryptionError::BadValue {
                key: "provider",
                value: name.to_owned(),
                expected: PROVIDER_EXPECTED,
            })
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `control_location`: who decrypts. Only [`ControlLocation::FrontEnd`] makes the
/// host decrypt; back-end encryption is the array's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlLocation {
    FrontEnd,
    BackEnd,
}

impl ControlLocation {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlLocation::FrontEnd => "front-end",
            ControlLocation::BackEnd => "back-end",
        }
    }
}

impl fmt::Display for ControlLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------

/// Validated Cinder encryption metadata (`GET /volumes/{id}/encryption`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionProps {
    /// `control_location` as given (`None` when absent or null).
    pub control_location: Option<ControlLocation>,
    /// The encryptor the host runs: `None` means nothing to decrypt (provider
    /// none/null/absent, or `control_location` not front-end).
    pub provider: Option<Provider>,
    /// `cipher` (`--cipher`), only read for a front-end provider; an empty string
    /// counts as absent (os-brick: `if self.cipher`).
    pub cipher: Option<String>,
    /// `key_size` in bits (`--key-size`), only read for a front-end provider.
    pub key_size: Option<u32>,
    /// `encryption_key_id` (the key manager's id of the secret), passed through.
    pub encryption_key_id: Option<String>,
}

use crate::json::{Obj, get};

fn get_str<'a>(o: &'a Obj, key: &'static str) -> Result<Option<&'a str>, EncryptionError> {
    Ok(crate::json::get_str(o, key)?)
}

impl From<crate::json::WrongType> for EncryptionError {
    fn from(w: crate::json::WrongType) -> Self {
        EncryptionError::WrongType {
            key: w.key,
            expected: w.expected,
            found: w.found,
        }
    }
}

fn control_location(o: &Obj) -> Result<Option<ControlLocation>, EncryptionError> {
    match get_str(o, "control_location")? {
        None => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("front-end") => Ok(Some(ControlLocation::FrontEnd)),
        Some(s) if s.eq_ignore_ascii_case("back-end") => Ok(Some(ControlLocation::BackEnd)),
        Some(s) => Err(EncryptionError::BadValue {
            key: "control_location",
            value: s.to_owned(),
            expected: "front-end or back-end",
        }),
    }
}

fn cipher(o: &Obj) -> Result<Option<String>, EncryptionError> {
    let Some(c) = get_str(o, "cipher")? else {
        return Ok(None);
    };
    if c.is_empty() {
        return Ok(None);
    }
    // Starts with a letter, so it can never read as an option.
    let ok = c.len() <= MAX_CIPHER_LEN
        && c.starts_with(|ch: char| ch.is_ascii_lowercase())
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b':');
    if ok {
        Ok(Some(c.to_owned()))
    } else {
        Err(EncryptionError::BadValue {
            key: "cipher",
            value: c.to_owned(),
            expected: "at most 64 characters of a-z 0-9 - : starting with a letter (e.g. aes-xts-plain64)",
        })
    }
}

const KEY_SIZE_EXPECTED: &str = "a positive multiple of 8 bits, at most 4096";

fn key_size(o: &Obj) -> Result<Option<u32>, EncryptionError> {
    let bad = |value: String| EncryptionError::BadValue {
        key: "key_size",
        value,
        expected: KEY_SIZE_EXPECTED,
    };
    let bits = match get(o, "key_size") {
        None => return Ok(None),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| bad(n.to_string()))?,
        Some(Value::String(s)) => {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(s.clone()));
            }
            s.parse::<u64>().map_err(|_| bad(s.clone()))?
        }
        Some(v) => {
            return Err(EncryptionError::WrongType {
                key: "key_size",
                expected: "an integer or a decimal string",
                found: json_type_name(v),
            });
        }
    };
    match u32::try_from(bits) {
        Ok(b) if b > 0 && b % 8 == 0 && b <= MAX_KEY_SIZE_BITS => Ok(Some(b)),
        _ => Err(bad(bits.to_string())),
    }
}

fn encryption_key_id(o: &Obj) -> Result<Option<String>, EncryptionError> {
    match get_str(o, "encryption_key_id")? {
        None => Ok(None),
        Some(id) if id.len() <= MAX_KEY_ID_LEN && !id.chars().any(char::is_control) => {
            Ok(Some(id.to_owned()))
        }
        Some(id) => Err(EncryptionError::BadValue {
            key: "encryption_key_id",
            value: id.to_owned(),
            expected: "at most 255 characters without control characters",
        }),
    }
}

impl EncryptionProps {
    /// Parses the encryption metadata object. As os-brick's
    /// `get_volume_encryptor`, the provider is only interpreted when
    /// `control_location` is `front-end` (case-insensitive); otherwise (back-end or
    /// absent) the host decrypts nothing and `provider`, `cipher` and `key_size` are
    /// ignored. Unlike os-brick, an unknown `control_location` and an unknown
    /// provider class are refused rather than treated as no-op / imported.
    pub fn from_metadata(meta: &Value) -> Result<EncryptionProps, EncryptionError> {
        let Value::Object(o) = meta else {
            return Err(EncryptionError::NotAnObject {
                found: json_type_name(meta),
            });
        };
        let control_location = control_location(o)?;
        let encryption_key_id = encryption_key_id(o)?;
        if control_location != Some(ControlLocation::FrontEnd) {
            return Ok(EncryptionProps {
                control_location,
                provider: None,
                cipher: None,
                key_size: None,
                encryption_key_id,
            });
        }
        let provider = match get_str(o, "provider")? {
            None => None,
            Some(name) => Provider::from_name(name)?,
        };
        Ok(EncryptionProps {
            control_location,
            provider,
            cipher: cipher(o)?,
            key_size: key_size(o)?,
            encryption_key_id,
        })
    }

    /// True when the host must decrypt (a front-end provider other than none).
    pub fn host_decrypts(&self) -> bool {
        self.provider.is_some()
    }
}

// ---------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------

/// The key manager's type of a secret (Castellan `managed_type()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// Raw key bytes; the passphrase is their lower-case hex. Castellan's `opaque`,
    /// `private`, `public` and `certificate` types parse as this too: os-brick
    /// hex-encodes every type other than `passphrase`.
    Symmetric,
    /// A passphrase, used as-is (UTF-8).
    Passphrase,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Symmetric => "symmetric",
            SecretKind::Passphrase => "passphrase",
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecretKind {
    type Err = EncryptionError;

    /// `symmetric`, `opaque`, `private`, `public`, `certificate` → Symmetric;
    /// `passphrase` → Passphrase (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<SecretKind, EncryptionError> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "passphrase" => Ok(SecretKind::Passphrase),
            "symmetric" | "opaque" | "private" | "public" | "certificate" => {
                Ok(SecretKind::Symmetric)
            }
            _ => Err(EncryptionError::BadSecretKind {
                value: s.to_owned(),
            }),
        }
    }
}

/// A LUKS / dm-crypt passphrase: zeroized on drop, redacted in `Debug`, no
/// `Display`, no `Serialize`, no `Clone`. Its bytes go to cryptsetup's stdin
/// (`--key-file=-`, so nothing is stripped) and nowhere else.
///
/// ```compile_fail
/// let p = moor_connector::encryption::Passphrase::derive(
///     moor_connector::encryption::SecretKind::Passphrase, b"secret").unwrap();
/// let _ = format!("{p}"); // no Display
/// ```
///
/// ```compile_fail
/// let p = moor_connector::encryption::Passphrase::derive(
///     moor_connector::encryption::SecretKind::Passphrase, b"secret").unwrap();
/// let _ = serde_json::to_string(&p); // no Serialize
/// ```
pub struct Passphrase(Zeroizing<Vec<u8>>);

// The only field is a `Zeroizing`, which wipes the bytes when it is dropped.
impl zeroize::ZeroizeOnDrop for Passphrase {}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

impl Passphrase {
    /// The passphrase for a key-manager secret (os-brick
    /// `get_passphrase_from_secret`): a `symmetric` (or other non-passphrase) key
    /// gives the lower-case hex of its bytes, two characters per byte (never the
    /// pre-Newton "mangled" form that dropped leading zeros); a `passphrase` secret
    /// gives its bytes, which must be UTF-8. Empty secrets and secrets longer than
    /// [`MAX_SECRET_LEN`] bytes are refused.
    pub fn derive(kind: SecretKind, raw: &[u8]) -> Result<Passphrase, EncryptionError> {
        let bad = |reason| EncryptionError::BadSecret { kind, reason };
        if raw.is_empty() {
            return Err(bad("empty"));
        }
        if raw.len() > MAX_SECRET_LEN {
            return Err(bad("longer than 4096 bytes"));
        }
        match kind {
            SecretKind::Symmetric => {
                // Allocated once at its final size: no reallocation leaves a copy.
                let mut hex = Zeroizing::new(Vec::with_capacity(raw.len() * 2));
                for &b in raw {
                    hex.push(HEX_DIGITS[usize::from(b >> 4)]);
                    hex.push(HEX_DIGITS[usize::from(b & 0x0f)]);
                }
                Ok(Passphrase(hex))
            }
            SecretKind::Passphrase => {
                if std::str::from_utf8(raw).is_err() {
                    return Err(bad("not valid UTF-8"));
                }
                Ok(Passphrase(Zeroizing::new(raw.to_vec())))
            }
        }
    }

    /// Reads a secret from `path` (`-` is stdin) and derives the passphrase. The
    /// content is taken byte for byte — nothing is stripped, not even a trailing
    /// newline (os-brick feeds the passphrase raw) — so the file must contain
    /// exactly the secret: raw key bytes for `symmetric`, the passphrase text for
    /// `passphrase`.
    ///
    /// Stdin is read unbuffered through a duplicate of fd 0, so no copy of the
    /// secret stays in the process-wide stdin buffer.
    pub fn from_secret_file(kind: SecretKind, path: &Path) -> Result<Passphrase, EncryptionError> {
        let read_err = |source| EncryptionError::SecretRead {
            path: path.display().to_string(),
            source,
        };
        let mut file = if path.as_os_str() == "-" {
            std::fs::File::from(io::stdin().as_fd().try_clone_to_owned().map_err(read_err)?)
        } else {
            std::fs::File::open(path).map_err(read_err)?
        };
        let raw = read_secret(&mut file).map_err(|e| match e {
            ReadSecretError::Io(source) => read_err(source),
            ReadSecretError::TooLong => EncryptionError::BadSecret {
                kind,
                reason: "longer than 4096 bytes",
            },
        })?;
        Passphrase::derive(kind, &raw)
    }

    /// The passphrase bytes, for cryptsetup's stdin only.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

enum ReadSecretError {
    Io(io::Error),
    TooLong,
}

/// Reads at most [`MAX_SECRET_LEN`] bytes into one zeroized buffer allocated at its
/// final size (no reallocation leaves stray copies).
fn read_secret(r: &mut impl Read) -> Result<Zeroizing<Vec<u8>>, ReadSecretError> {
    let mut buf = Zeroizing::new(vec![0u8; MAX_SECRET_LEN + 1]);
    let mut n = 0;
    loop {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if n > MAX_SECRET_LEN {
                    return Err(ReadSecretError::TooLong);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadSecretError::Io(e)),
        }
    }
    // Shrinking in place keeps the allocation; the tail is zeroed on drop anyway.
    buf.truncate(n);
    Ok(buf)
}

// ---------------------------------------------------------------------------------
// Mapping name
// ---------------------------------------------------------------------------------

/// The device-mapper name of a volume's decrypted mapping: `crypt-<volume_id>`.
///
/// Derived from the volume, not from a device path (os-brick uses
/// `crypt-<basename(device_path)>`, which changes with the transport and path), so
/// attach and detach agree whatever device the volume appeared as. The id may only
/// contain `A-Z a-z 0-9 . _ -` and the name is at most 127 bytes (`DM_NAME_LEN`
/// 128 with the NUL); the prefix means the name never starts with `-`.
pub fn mapping_name(volume_id: &str) -> Result<String, EncryptionError> {
    let bad = |reason| EncryptionError::BadVolumeId {
        value: volume_id.to_owned(),
        reason,
    };
    if volume_id.is_empty() {
        return Err(bad("empty"));
    }
    if MAPPING_PREFIX.len() + volume_id.len() > MAX_MAPPING_NAME_LEN {
        return Err(bad("longer than 121 characters"));
    }
    if !volume_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(bad("may only contain A-Z a-z 0-9 . _ -"));
    }
    Ok(format!("{MAPPING_PREFIX}{volume_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    fn parse(v: Value) -> Result<EncryptionProps, EncryptionError> {
        EncryptionProps::from_metadata(&v)
    }

    fn front(provider: Value) -> Value {
        json!({"provider": provider, "control_location": "front-end",
               "cipher": "aes-xts-plain64", "key_size": 256,
               "encryption_key_id": "3a3cf7d6-0000-4000-8000-000000000001"})
    }

    fn with(mut base: Value, key: &str, v: Value) -> Value {
        base.as_object_mut().unwrap().insert(key.to_owned(), v);
        base
    }

    fn vectors() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/os-brick-vectors/encryptors.json"
        );
        match std::fs::read_to_string(path) {
            Ok(s) => serde_json::from_str(&s).unwrap(),
            Err(_) => Value::Null,
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // ---- metadata ----

    #[test]
    fn cinder_example() {
        let p = parse(front(json!("luks"))).unwrap();
        assert_eq!(
            p,
            EncryptionProps {
                control_location: Some(ControlLocation::FrontEnd),
                provider: Some(Provider::Luks),
                cipher: Some("aes-xts-plain64".into()),
                key_size: Some(256),
                encryption_key_id: Some("3a3cf7d6-0000-4000-8000-000000000001".into()),
            }
        );
        assert!(p.host_decrypts());
    }

    #[test]
    fn format_names() {
        for (name, want) in [
            ("luks", Some(Provider::Luks)),
            ("luks2", Some(Provider::Luks2)),
            ("plain", Some(Provider::Plain)),
            ("none", None),
        ] {
            assert_eq!(parse(front(json!(name))).unwrap().provider, want, "{name}");
        }
        let p = parse(front(Value::Null)).unwrap();
        assert_eq!(p.provider, None);
        assert!(!p.host_decrypts());
        let mut absent = front(Value::Null);
        absent.as_object_mut().unwrap().remove("provider");
        assert_eq!(parse(absent).unwrap().provider, None);
    }

    #[test]
    fn legacy_class_names() {
        let cases = [
            (
                "nova.volume.encryptors.luks.LuksEncryptor",
                Some(Provider::Luks),
            ),
            (
                "os_brick.encryptors.luks.LuksEncryptor",
                Some(Provider::Luks),
            ),
            (
                "os_brick.encryptors.luks.Luks2Encryptor",
                Some(Provider::Luks2),
            ),
            (
                "nova.volume.encryptors.cryptsetup.CryptsetupEncryptor",
                Some(Provider::Plain),
            ),
            (
                "os_brick.encryptors.cryptsetup.CryptsetupEncryptor",
                Some(Provider::Plain),
            ),
            ("LuksEncryptor", Some(Provider::Luks)),
            ("Luks2Encryptor", Some(Provider::Luks2)),
            ("CryptsetupEncryptor", Some(Provider::Plain)),
            ("NoOpEncryptor", None),
            ("nova.volume.encryptors.nop.NoOpEncryptor", None),
            ("nova.volume.encryptors.nop.NoopEncryptor", None),
            ("os_brick.encryptors.nop.NoopEncryptor", None),
            ("os_brick.encryptors.nop.NoOpEncryptor", None),
        ];
        for (name, want) in cases {
            assert_eq!(parse(front(json!(name))).unwrap().provider, want, "{name}");
            assert_eq!(Provider::from_name(name).unwrap(), want, "{name}");
        }
        // Every table entry is covered above.
        assert_eq!(LEGACY_PROVIDERS.len(), cases.len());
    }

    #[test]
    fn vector_provider_values() {
        let v = vectors();
        let pv = &v["encryption metadata (Cinder GET /volumes/{id}/encryption, cinder/db/api.py volume_encryption_metadata_get)"]
            ["provider values"];
        let Some(legacy) = pv["legacy aliases"].as_array() else {
            return; // vectors not available in this checkout
        };
        for name in legacy.iter().filter_map(Value::as_str) {
            if name.ends_with(".*") {
                continue;
            }
            assert!(Provider::from_name(name).is_ok(), "{name}");
        }
        for (name, class) in pv.as_object().unwrap() {
            let Some(class) = class.as_str() else {
                continue;
            };
            let from_class = Provider::from_name(class).unwrap();
            let from_name = if name == "None" {
                None
            } else {
                Provider::from_name(name).unwrap()
            };
            assert_eq!(from_class, from_name, "{name} / {class}");
        }
    }

    #[test]
    fn unknown_provider_refused() {
        for name in [
            "LUKS",
            "",
            "my.custom.Encryptor",
            "os_brick.encryptors.luks.Evil",
            "luks1",
        ] {
            let e = parse(front(json!(name))).unwrap_err();
            assert!(
                matches!(
                    e,
                    EncryptionError::BadValue {
                        key: "provider",
                        ..
                    }
                ),
                "{name}: {e}"
            );
            let msg = e.to_string();
            assert!(msg.contains("provider") && msg.contains(&format!("{name:?}")));
            assert!(msg.contains("does not load other classes"), "{msg}");
        }
        assert!(matches!(
            parse(front(json!(1))),
            Err(EncryptionError::WrongType {
                key: "provider",
                found: "number",
                ..
            })
        ));
    }

    #[test]
    fn control_location_case_insensitive() {
        for cl in ["front-end", "FRONT-END", "Front-End"] {
            let p = parse(with(front(json!("luks2")), "control_location", json!(cl))).unwrap();
            assert_eq!(p.control_location, Some(ControlLocation::FrontEnd));
            assert_eq!(p.provider, Some(Provider::Luks2));
        }
    }

    #[test]
    fn back_end_means_no_host_decryption() {
        for cl in ["back-end", "BACK-END"] {
            let p = parse(with(front(json!("luks")), "control_location", json!(cl))).unwrap();
            assert_eq!(p.control_location, Some(ControlLocation::BackEnd));
            assert_eq!(p.provider, None);
            assert!(!p.host_decrypts());
            assert_eq!(p.cipher, None);
            assert_eq!(p.key_size, None);
            assert_eq!(
                p.encryption_key_id.as_deref(),
                Some("3a3cf7d6-0000-4000-8000-000000000001")
            );
        }
        // Back-end metadata is the array's: its provider and cipher are not judged.
        let p = parse(
            json!({"control_location": "back-end", "provider": "VendorThing",
                             "cipher": "AES-256", "key_size": 0}),
        )
        .unwrap();
        assert!(!p.host_decrypts());
        // No control_location at all: os-brick's NoOp.
        let mut v = front(json!("luks"));
        v.as_object_mut().unwrap().remove("control_location");
        let p = parse(v).unwrap();
        assert_eq!(p.control_location, None);
        assert!(!p.host_decrypts());
    }

    #[test]
    fn bad_control_location() {
        let e = parse(with(
            front(json!("luks")),
            "control_location",
            json!("frontend"),
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "encryption metadata control_location has invalid value \"frontend\": expected front-end or back-end"
        );
    }

    #[test]
    fn ciphers() {
        for c in [
            "aes-xts-plain64",
            "aes-cbc-essiv:sha256",
            "serpent-xts-plain64",
        ] {
            let p = parse(with(front(json!("luks")), "cipher", json!(c))).unwrap();
            assert_eq!(p.cipher.as_deref(), Some(c));
        }
        for c in [json!(""), Value::Null] {
            let p = parse(with(front(json!("luks")), "cipher", c)).unwrap();
            assert_eq!(p.cipher, None);
        }
        let long = "a".repeat(65);
        for c in [
            "AES-XTS-PLAIN64",
            "aes xts",
            "aes-xts-plain64\n",
            "capi:xts(aes)-plain64",
            "--cipher",
            ":aes",
            "0aes",
            long.as_str(),
        ] {
            let e = parse(with(front(json!("luks")), "cipher", json!(c))).unwrap_err();
            assert!(
                matches!(e, EncryptionError::BadValue { key: "cipher", .. }),
                "{c}"
            );
            // The value is quoted with {:?}: a newline is shown escaped.
            assert!(e.to_string().contains(&format!("{c:?}")), "{e}");
            assert!(!e.to_string().contains('\n'));
        }
        assert!(parse(with(front(json!("luks")), "cipher", json!("a".repeat(64)))).is_ok());
        assert_eq!(
            parse(with(front(json!("luks")), "cipher", json!("AES")))
                .unwrap_err()
                .to_string(),
            "encryption metadata cipher has invalid value \"AES\": expected at most 64 characters of a-z 0-9 - : starting with a letter (e.g. aes-xts-plain64)"
        );
    }

    #[test]
    fn key_sizes() {
        for (v, want) in [
            (json!(256), Some(256)),
            (json!(512), Some(512)),
            (json!(8), Some(8)),
            (json!(4096), Some(4096)),
            (json!("256"), Some(256)),
            (Value::Null, None),
        ] {
            let p = parse(with(front(json!("luks")), "key_size", v.clone())).unwrap();
            assert_eq!(p.key_size, want, "{v}");
        }
        for v in [
            json!(0),
            json!(-256),
            json!(255),
            json!(4104),
            json!(256.0),
            json!(1u64 << 40),
            json!(""),
            json!("0x100"),
            json!("+256"),
            json!(" 256"),
            json!("256bits"),
        ] {
            let e = parse(with(front(json!("luks")), "key_size", v.clone())).unwrap_err();
            assert!(
                matches!(
                    e,
                    EncryptionError::BadValue {
                        key: "key_size",
                        ..
                    }
                ),
                "{v}: {e}"
            );
        }
        assert_eq!(
            parse(with(front(json!("luks")), "key_size", json!(255)))
                .unwrap_err()
                .to_string(),
            "encryption metadata key_size has invalid value \"255\": expected a positive multiple of 8 bits, at most 4096"
        );
        assert_eq!(
            parse(with(front(json!("luks")), "key_size", json!([256])))
                .unwrap_err()
                .to_string(),
            "encryption metadata key_size must be an integer or a decimal string, got array"
        );
    }

    #[test]
    fn key_id_and_unknown_keys() {
        let p = parse(json!({"control_location": "front-end", "provider": "luks",
                             "volume_type_id": "x", "deleted": false, "created_at": null}))
        .unwrap();
        assert_eq!(p.encryption_key_id, None);
        assert_eq!(p.cipher, None);
        assert_eq!(p.key_size, None);
        assert!(matches!(
            parse(with(front(json!("luks")), "encryption_key_id", json!(5))),
            Err(EncryptionError::WrongType {
                key: "encryption_key_id",
                ..
            })
        ));
        assert!(matches!(
            parse(with(
                front(json!("luks")),
                "encryption_key_id",
                json!("a\nb")
            )),
            Err(EncryptionError::BadValue {
                key: "encryption_key_id",
                ..
            })
        ));
    }

    #[test]
    fn not_an_object() {
        assert_eq!(
            parse(json!("luks")).unwrap_err().to_string(),
            "encryption metadata must be a JSON object, got string"
        );
    }

    // ---- secrets ----

    const RAW_HEX: &str = "0c84146034e747639b698368807286df";

    #[test]
    fn secret_kinds() {
        for (s, want) in [
            ("symmetric", SecretKind::Symmetric),
            ("opaque", SecretKind::Symmetric),
            ("private", SecretKind::Symmetric),
            ("public", SecretKind::Symmetric),
            ("certificate", SecretKind::Symmetric),
            ("passphrase", SecretKind::Passphrase),
            ("Passphrase", SecretKind::Passphrase),
        ] {
            assert_eq!(s.parse::<SecretKind>().unwrap(), want, "{s}");
        }
        assert_eq!(
            "key".parse::<SecretKind>().unwrap_err().to_string(),
            "invalid secret type \"key\": expected symmetric, passphrase, opaque, private, public or certificate"
        );
    }

    #[test]
    fn symmetric_vector() {
        let p = Passphrase::derive(SecretKind::Symmetric, &unhex(RAW_HEX)).unwrap();
        assert_eq!(p.as_bytes(), RAW_HEX.as_bytes());
        // Never the pre-Newton mangled form (leading zeros dropped).
        assert_ne!(p.as_bytes(), b"c84146034e747639b698368807286df");
        assert_eq!(p.as_bytes().len(), 32);
    }

    #[test]
    fn passphrase_vector() {
        let p = Passphrase::derive(SecretKind::Passphrase, b"test-passphrase").unwrap();
        assert_eq!(p.as_bytes(), b"test-passphrase");
    }

    #[test]
    fn vectors_file() {
        let v = vectors();
        let d = &v["passphrase_derivation"];
        let Some(sym) = d["symmetric/opaque/any non-'passphrase' secret"].as_object() else {
            return; // vectors not available in this checkout
        };
        let raw = unhex(sym["raw_key_hex"].as_str().unwrap());
        let p = Passphrase::derive(SecretKind::Symmetric, &raw).unwrap();
        assert_eq!(p.as_bytes(), sym["passphrase"].as_str().unwrap().as_bytes());

        let pp = &d["'passphrase' secret"];
        let p = Passphrase::derive(
            SecretKind::Passphrase,
            pp["raw_bytes_utf8"].as_str().unwrap().as_bytes(),
        )
        .unwrap();
        assert_eq!(p.as_bytes(), pp["passphrase"].as_str().unwrap().as_bytes());

        let legacy = d
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.starts_with("legacy"))
            .map(|(_, v)| v)
            .unwrap();
        let raw = unhex(legacy["raw_key_hex"].as_str().unwrap());
        let p = Passphrase::derive(SecretKind::Symmetric, &raw).unwrap();
        assert_ne!(p.as_bytes(), legacy["mangled"].as_str().unwrap().as_bytes());
    }

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        let raw: Vec<u8> = (0..=255u8).collect();
        let p = Passphrase::derive(SecretKind::Symmetric, &raw).unwrap();
        let want: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(p.as_bytes(), want.as_bytes());
    }

    #[test]
    fn passphrase_kept_byte_for_byte() {
        let p = Passphrase::derive(SecretKind::Passphrase, b" p\xc3\xa4ss \n").unwrap();
        assert_eq!(p.as_bytes(), b" p\xc3\xa4ss \n");
    }

    #[test]
    fn bad_secrets() {
        let e = Passphrase::derive(SecretKind::Passphrase, b"").unwrap_err();
        assert_eq!(e.to_string(), "the passphrase secret is not usable: empty");
        let e = Passphrase::derive(SecretKind::Symmetric, b"").unwrap_err();
        assert_eq!(e.to_string(), "the symmetric secret is not usable: empty");
        let e = Passphrase::derive(SecretKind::Passphrase, b"hunter2-\xff-secret").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the passphrase secret is not usable: not valid UTF-8"
        );
        let too_long = vec![b'k'; MAX_SECRET_LEN + 1];
        assert!(Passphrase::derive(SecretKind::Symmetric, &too_long).is_err());
        assert!(Passphrase::derive(SecretKind::Symmetric, &too_long[1..]).is_ok());
    }

    #[test]
    fn debug_is_redacted() {
        let p = Passphrase::derive(SecretKind::Passphrase, b"hunter2-secret").unwrap();
        let d = format!("{p:?}");
        assert_eq!(d, "Passphrase(<redacted>)");
        assert_eq!(format!("{p:#?}"), "Passphrase(<redacted>)");
        let p = Passphrase::derive(SecretKind::Symmetric, &unhex(RAW_HEX)).unwrap();
        let wrapped = format!("{:?}", Some(&p));
        assert!(!wrapped.contains(RAW_HEX) && !wrapped.contains("0c84"));
    }

    #[test]
    fn errors_never_contain_the_secret() {
        let secret = "hunter2-very-secret";
        let mut bad = secret.as_bytes().to_vec();
        bad.push(0xff);
        for kind in [SecretKind::Passphrase, SecretKind::Symmetric] {
            let mut long = secret.as_bytes().repeat(MAX_SECRET_LEN / secret.len() + 1);
            long.truncate(MAX_SECRET_LEN + 1);
            let e = Passphrase::derive(kind, &long).unwrap_err();
            assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
        }
        let e = Passphrase::derive(SecretKind::Passphrase, &bad).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter2"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bad)
            .unwrap();
        let e = Passphrase::from_secret_file(SecretKind::Passphrase, &path).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter2"));
        assert!(!format!("{e} {e:?}").contains("\\xff"));
    }

    #[test]
    fn secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, unhex(RAW_HEX)).unwrap();
        let p = Passphrase::from_secret_file(SecretKind::Symmetric, &path).unwrap();
        assert_eq!(p.as_bytes(), RAW_HEX.as_bytes());

        // Nothing is stripped: a trailing newline is part of the passphrase.
        std::fs::write(&path, b"test-passphrase\n").unwrap();
        let p = Passphrase::from_secret_file(SecretKind::Passphrase, &path).unwrap();
        assert_eq!(p.as_bytes(), b"test-passphrase\n");

        std::fs::write(&path, vec![b'x'; MAX_SECRET_LEN]).unwrap();
        assert!(Passphrase::from_secret_file(SecretKind::Passphrase, &path).is_ok());
        std::fs::write(&path, vec![b'x'; MAX_SECRET_LEN + 1]).unwrap();
        let e = Passphrase::from_secret_file(SecretKind::Passphrase, &path).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the passphrase secret is not usable: longer than 4096 bytes"
        );

        std::fs::write(&path, b"").unwrap();
        assert!(Passphrase::from_secret_file(SecretKind::Symmetric, &path).is_err());

        let missing = dir.path().join("missing");
        let e = Passphrase::from_secret_file(SecretKind::Symmetric, &missing).unwrap_err();
        assert!(matches!(e, EncryptionError::SecretRead { .. }));
        assert!(e.to_string().contains("cannot read the secret from"));
    }

    #[test]
    fn read_secret_handles_short_reads() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((&b, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = b;
                self.0 = rest;
                Ok(1)
            }
        }
        let Ok(raw) = read_secret(&mut Trickle(b"abc")) else {
            panic!("read failed");
        };
        assert_eq!(&raw[..], b"abc");
    }

    #[test]
    fn zeroize_on_drop() {
        fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        assert_zeroize_on_drop::<Passphrase>();
        let p = Passphrase::derive(SecretKind::Passphrase, b"test-passphrase").unwrap();
        drop(p);
    }

    // ---- mapping names ----

    #[test]
    fn mapping_names() {
        assert_eq!(
            mapping_name("3a3cf7d6-1b2c-4d5e-8f90-0123456789ab").unwrap(),
            "crypt-3a3cf7d6-1b2c-4d5e-8f90-0123456789ab"
        );
        assert_eq!(mapping_name("vol_1.a").unwrap(), "crypt-vol_1.a");
        let max = "v".repeat(MAX_MAPPING_NAME_LEN - MAPPING_PREFIX.len());
        assert_eq!(mapping_name(&max).unwrap().len(), MAX_MAPPING_NAME_LEN);
        let e = mapping_name(&format!("{max}v")).unwrap_err();
        assert!(e.to_string().contains("longer than 121 characters"), "{e}");
        for bad in [
            "",
            "/dev/sdb",
            "os-brick+dev+sdb",
            "a b",
            "a\nb",
            "../x",
            "vol\u{e9}",
        ] {
            assert!(
                matches!(mapping_name(bad), Err(EncryptionError::BadVolumeId { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            mapping_name("a/b").unwrap_err().to_string(),
            "invalid volume id \"a/b\" for a mapping name: may only contain A-Z a-z 0-9 . _ -"
        );
        assert_eq!(
            mapping_name("").unwrap_err().to_string(),
            "invalid volume id \"\" for a mapping name: empty"
        );
    }
}
