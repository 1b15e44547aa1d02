//! LUKS and plain dm-crypt operations (`cryptsetup`). Passphrases reach cryptsetup
//! on its stdin only (`--key-file=-`), never in argv. The operations that could
//! destroy a volume carry a guard moord checks in root right before it runs them:
//! `luks.format` only formats a target with no recognisable header, and
//! `luks.remove_key` never kills the last active key slot.

use serde::{Deserialize, Serialize};

use super::{
    DevKind, Guard, OpError, Plan, Secret, SecretText, TypedOp, bad, check_device, check_wwid,
    is_canonical_path, secret_exec_plan,
};

/// What a LUKS op acts on. JSON: `{"device":{"name":"sdb","expected_wwid":"36…"}}` or
/// `{"image":{"path":"/var/lib/x.img"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LuksTarget {
    /// A whole block device (`sdX`, `dm-N` or an NVMe namespace `nvmeXnY`) and the
    /// WWID the caller captured;
    /// moord checks [`Guard::Wwid`] first.
    Device { name: String, expected_wwid: String },
    /// A volume image file: an absolute canonical path. Which files are allowed is
    /// decided by the filters (the shipped filters allow none); moord checks
    /// [`Guard::RegularFile`] first.
    Image { path: String },
}

impl LuksTarget {
    /// `/dev/NAME` or the image path: what cryptsetup is given.
    pub fn path(&self) -> String {
        match self {
            LuksTarget::Device { name, .. } => format!("/dev/{name}"),
            LuksTarget::Image { path } => path.clone(),
        }
    }

    fn check(&self, op: &'static str) -> Result<(), OpError> {
        match self {
            LuksTarget::Device {
                name,
                expected_wwid,
            } => {
                check_device(op, name, DevKind::AnyDisk)?;
                check_wwid(op, expected_wwid)
            }
            LuksTarget::Image { path } => {
                if is_canonical_path(path) && path != "/" {
                    Ok(())
                } else {
                    Err(bad(
                        op,
                        format!("target image path {path:?} is not absolute and canonical"),
                    ))
                }
            }
        }
    }

    /// The identity check made before anything runs on the target.
    fn identity(&self) -> Guard {
        match self {
            LuksTarget::Device {
                name,
                expected_wwid,
            } => Guard::Wwid {
                device: name.clone(),
                expected: expected_wwid.clone(),
            },
            LuksTarget::Image { path } => Guard::RegularFile { path: path.clone() },
        }
    }
}

/// The LUKS header version `luks.format` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LuksVersion {
    Luks1,
    Luks2,
}

impl LuksVersion {
    fn arg(self) -> &'static str {
        match self {
            LuksVersion::Luks1 => "luks1",
            LuksVersion::Luks2 => "luks2",
        }
    }
}

/// Key-derivation function of a new key slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PbkdfAlgorithm {
    Pbkdf2,
    Argon2i,
    Argon2id,
}

impl PbkdfAlgorithm {
    fn arg(self) -> &'static str {
        match self {
            PbkdfAlgorithm::Pbkdf2 => "pbkdf2",
            PbkdfAlgorithm::Argon2i => "argon2i",
            PbkdfAlgorithm::Argon2id => "argon2id",
        }
    }
}

/// Key-derivation cost for a new key slot; every field optional = cryptsetup's
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksPbkdf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<PbkdfAlgorithm>,
    /// 1..=60000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iter_time_ms: Option<u32>,
    /// 1000..=100_000_000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_iterations: Option<u32>,
    /// 32..=4_194_304.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_kib: Option<u32>,
}

impl LuksPbkdf {
    /// The cryptsetup options, in the fixed order the filters expect.
    fn args(&self, op: &'static str) -> Result<Vec<String>, OpError> {
        let range = |field: &str, v: Option<u32>, lo: u32, hi: u32| match v {
            Some(n) if !(lo..=hi).contains(&n) => {
                Err(bad(op, format!("pbkdf.{field} {n} is not in {lo}..={hi}")))
            }
            _ => Ok(()),
        };
        range("iter_time_ms", self.iter_time_ms, 1, 60_000)?;
        range("force_iterations", self.force_iterations, 1000, 100_000_000)?;
        range("memory_kib", self.memory_kib, 32, 4_194_304)?;
        // cryptsetup refuses the pair: a forced count has no time target.
        if self.iter_time_ms.is_some() && self.force_iterations.is_some() {
            return Err(bad(
                op,
                "pbkdf.iter_time_ms and pbkdf.force_iterations exclude each other",
            ));
        }
        let mut a = Vec::new();
        let mut push = |flag: &str, v: String| {
            a.push(flag.to_string());
            a.push(v);
        };
        if let Some(alg) = self.algorithm {
            push("--pbkdf", alg.arg().into());
        }
        if let Some(n) = self.iter_time_ms {
            push("--iter-time", n.to_string());
        }
        if let Some(n) = self.force_iterations {
            push("--pbkdf-force-iterations", n.to_string());
        }
        if let Some(n) = self.memory_kib {
            push("--pbkdf-memory", n.to_string());
        }
        Ok(a)
    }
}

/// How `luks.open` maps the volume: a LUKS header, or plain dm-crypt (no header;
/// os-brick's CryptsetupEncryptor volumes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CryptMode {
    Luks,
    Plain,
}

/// Longest secret moord passes on (cryptsetup's interactive limit is 512; key files
/// may be longer, but a passphrase never needs more).
const MAX_SECRET: usize = 8192;

fn check_secret(op: &'static str, field: &str, s: &SecretText) -> Result<(), OpError> {
    let b = s.expose().as_bytes();
    if b.is_empty() || b.len() > MAX_SECRET || b.contains(&0) {
        // Never the secret itself in the message.
        return Err(bad(
            op,
            format!("{field} must be 1-{MAX_SECRET} bytes without NUL"),
        ));
    }
    Ok(())
}

fn secret(s: &SecretText) -> Secret {
    Secret::new(s.expose().as_bytes().to_vec())
}

/// `crypt-[A-Za-z0-9._+-]{1,121}`: moord only opens and closes moor/os-brick style
/// mappings, never e.g. a host's root `luks-<uuid>`.
fn check_mapping(op: &'static str, field: &str, name: &str) -> Result<(), OpError> {
    let ok = name.strip_prefix("crypt-").is_some_and(|r| {
        !r.is_empty()
            && r.len() <= 121
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(bad(
            op,
            format!("{field} {name:?} is not crypt- followed by 1-121 of A-Z a-z 0-9 . _ + -"),
        ))
    }
}

/// `[a-z0-9:-]{1,64}` with at least one letter, not starting with `-` (it must not
/// read as an option).
fn check_cipher(op: &'static str, c: &str) -> Result<(), OpError> {
    let ok = !c.is_empty()
        && c.len() <= 64
        && !c.starts_with('-')
        && c.bytes().any(|b| b.is_ascii_lowercase())
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b":-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            op,
            format!("cipher {c:?} is not 1-64 of a-z 0-9 : - with a letter"),
        ))
    }
}

fn check_key_size(op: &'static str, k: u32) -> Result<(), OpError> {
    if (8..=4096).contains(&k) && k.is_multiple_of(8) {
        Ok(())
    } else {
        Err(bad(
            op,
            format!("key_size {k} is not a multiple of 8 in 8..=4096"),
        ))
    }
}

/// `--cipher C` and `--key-size K`, each when given.
fn cipher_args(
    op: &'static str,
    cipher: Option<&str>,
    key_size: Option<u32>,
) -> Result<Vec<String>, OpError> {
    let mut a = Vec::new();
    if let Some(c) = cipher {
        check_cipher(op, c)?;
        a.extend(["--cipher".to_string(), c.to_string()]);
    }
    if let Some(k) = key_size {
        check_key_size(op, k)?;
        a.extend(["--key-size".to_string(), k.to_string()]);
    }
    Ok(a)
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn check_slot(op: &'static str, slot: u8) -> Result<(), OpError> {
    if slot <= 31 {
        Ok(())
    } else {
        Err(bad(op, format!("slot {slot} is not in 0..=31")))
    }
}

/// `cryptsetup isLuks PATH`: exit 0 when the target has a LUKS header, 1 when not
/// (the caller reads `exit_code`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksIsLuks {
    pub target: LuksTarget,
}

impl TypedOp for LuksIsLuks {
    const NAME: &'static str = "luks.is_luks";
}

impl LuksIsLuks {
    pub fn plan(self) -> Result<Plan, OpError> {
        self.target.check(Self::NAME)?;
        let path = self.target.path();
        Ok(secret_exec_plan(
            argv(&["cryptsetup", "isLuks", &path]),
            None,
            Some(self.target.identity()),
        ))
    }
}

/// `cryptsetup --batch-mode luksFormat --type luks1|luks2 [--cipher C] [--key-size K]
/// [PBKDF options] --key-file=- PATH`, the passphrase on stdin. moord refuses a
/// target that carries any recognisable header ([`Guard::Blank`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksFormat {
    pub target: LuksTarget,
    pub version: LuksVersion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbkdf: Option<LuksPbkdf>,
    pub passphrase: SecretText,
}

impl TypedOp for LuksFormat {
    const NAME: &'static str = "luks.format";
}

impl LuksFormat {
    pub fn plan(self) -> Result<Plan, OpError> {
        const OP: &str = LuksFormat::NAME;
        self.target.check(OP)?;
        check_secret(OP, "passphrase", &self.passphrase)?;
        let pbkdf = self.pbkdf.unwrap_or_default();
        // LUKS1 key slots are PBKDF2 only; cryptsetup would refuse later.
        if self.version == LuksVersion::Luks1
            && pbkdf.algorithm.is_some_and(|a| a != PbkdfAlgorithm::Pbkdf2)
        {
            return Err(bad(OP, "pbkdf.algorithm: LUKS1 supports pbkdf2 only"));
        }
        let path = self.target.path();
        let mut a = argv(&[
            "cryptsetup",
            "--batch-mode",
            "luksFormat",
            "--type",
            self.version.arg(),
        ]);
        a.extend(cipher_args(OP, self.cipher.as_deref(), self.key_size)?);
        a.extend(pbkdf.args(OP)?);
        a.extend(["--key-file=-".to_string(), path.clone()]);
        let guard = Guard::All(vec![self.target.identity(), Guard::Blank { path }]);
        Ok(secret_exec_plan(
            a,
            Some(secret(&self.passphrase)),
            Some(guard),
        ))
    }
}

/// Map a volume as `/dev/mapper/NAME`: `cryptsetup luksOpen [--readonly]
/// --key-file=- PATH NAME` (LUKS) or `cryptsetup create [--readonly] --key-file=-
/// [--cipher C] [--key-size K] NAME PATH` (plain, os-brick's argv).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksOpen {
    pub target: LuksTarget,
    pub name: String,
    pub mode: CryptMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_size: Option<u32>,
    #[serde(default)]
    pub read_only: bool,
    pub passphrase: SecretText,
}

impl TypedOp for LuksOpen {
    const NAME: &'static str = "luks.open";
}

impl LuksOpen {
    pub fn plan(self) -> Result<Plan, OpError> {
        const OP: &str = LuksOpen::NAME;
        self.target.check(OP)?;
        check_mapping(OP, "name", &self.name)?;
        check_secret(OP, "passphrase", &self.passphrase)?;
        let path = self.target.path();
        let ro: &[&str] = if self.read_only { &["--readonly"] } else { &[] };
        let a = match self.mode {
            CryptMode::Luks => {
                // The header names cipher and key size; an override would be ignored.
                if self.cipher.is_some() || self.key_size.is_some() {
                    return Err(bad(
                        OP,
                        "cipher and key_size are for mode plain only (a LUKS header names them)",
                    ));
                }
                let mut a = argv(&["cryptsetup", "luksOpen"]);
                a.extend(argv(ro));
                a.extend(argv(&["--key-file=-", &path, &self.name]));
                a
            }
            CryptMode::Plain => {
                let mut a = argv(&["cryptsetup", "create"]);
                a.extend(argv(ro));
                a.push("--key-file=-".into());
                a.extend(cipher_args(OP, self.cipher.as_deref(), self.key_size)?);
                a.extend([self.name.clone(), path]);
                a
            }
        };
        Ok(secret_exec_plan(
            a,
            Some(secret(&self.passphrase)),
            Some(self.target.identity()),
        ))
    }
}

fn crypt_mapping(
    op: &'static str,
    name: &str,
    backing: &str,
    expected_wwid: &str,
) -> Result<Guard, OpError> {
    check_mapping(op, "name", name)?;
    check_device(op, backing, DevKind::AnyDisk).map_err(|_| {
        bad(
            op,
            format!("backing {backing:?} is not sdX, dm-N or nvmeXnY"),
        )
    })?;
    check_wwid(op, expected_wwid)?;
    Ok(Guard::CryptMapping {
        name: name.to_string(),
        backing: backing.to_string(),
        expected_wwid: expected_wwid.to_string(),
    })
}

/// `cryptsetup close NAME`, after moord checks that NAME is a dm-crypt mapping of
/// `backing` and that `backing` carries `expected_wwid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksClose {
    pub name: String,
    pub backing: String,
    pub expected_wwid: String,
}

impl TypedOp for LuksClose {
    const NAME: &'static str = "luks.close";
}

impl LuksClose {
    pub fn plan(self) -> Result<Plan, OpError> {
        let guard = crypt_mapping(Self::NAME, &self.name, &self.backing, &self.expected_wwid)?;
        Ok(secret_exec_plan(
            argv(&["cryptsetup", "close", &self.name]),
            None,
            Some(guard),
        ))
    }
}

/// Grow a mapping to its backing device: `cryptsetup resize --key-file=- NAME`
/// (LUKS2 keeps the volume key in the kernel keyring and needs the passphrase) or
/// `cryptsetup resize NAME`. Guarded like [`LuksClose`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksResize {
    pub name: String,
    pub backing: String,
    pub expected_wwid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<SecretText>,
}

impl TypedOp for LuksResize {
    const NAME: &'static str = "luks.resize";
}

impl LuksResize {
    pub fn plan(self) -> Result<Plan, OpError> {
        const OP: &str = LuksResize::NAME;
        let guard = crypt_mapping(OP, &self.name, &self.backing, &self.expected_wwid)?;
        let (a, s) = match &self.passphrase {
            Some(p) => {
                check_secret(OP, "passphrase", p)?;
                (
                    argv(&["cryptsetup", "resize", "--key-file=-", &self.name]),
                    Some(secret(p)),
                )
            }
            None => (argv(&["cryptsetup", "resize", &self.name]), None),
        };
        Ok(secret_exec_plan(a, s, Some(guard)))
    }
}

/// Add a key slot: `cryptsetup luksAddKey [PBKDF options] --key-file=-
/// --keyfile-size=N --new-keyfile=- --new-keyfile-size=M PATH`; stdin is the
/// existing passphrase (N bytes) followed by the new one (M bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksAddKey {
    pub target: LuksTarget,
    pub passphrase: SecretText,
    pub new_passphrase: SecretText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbkdf: Option<LuksPbkdf>,
}

impl TypedOp for LuksAddKey {
    const NAME: &'static str = "luks.add_key";
}

impl LuksAddKey {
    pub fn plan(self) -> Result<Plan, OpError> {
        const OP: &str = LuksAddKey::NAME;
        self.target.check(OP)?;
        check_secret(OP, "passphrase", &self.passphrase)?;
        check_secret(OP, "new_passphrase", &self.new_passphrase)?;
        let (old, new) = (
            self.passphrase.expose().as_bytes(),
            self.new_passphrase.expose().as_bytes(),
        );
        // A second slot with the same passphrase adds nothing and hides mistakes.
        if old == new {
            return Err(bad(OP, "new_passphrase equals passphrase"));
        }
        let mut a = argv(&["cryptsetup", "luksAddKey"]);
        a.extend(self.pbkdf.unwrap_or_default().args(OP)?);
        a.extend([
            "--key-file=-".to_string(),
            format!("--keyfile-size={}", old.len()),
            "--new-keyfile=-".to_string(),
            format!("--new-keyfile-size={}", new.len()),
            self.target.path(),
        ]);
        let mut both = Vec::with_capacity(old.len() + new.len());
        both.extend_from_slice(old);
        both.extend_from_slice(new);
        Ok(secret_exec_plan(
            a,
            Some(Secret::new(both)),
            Some(self.target.identity()),
        ))
    }
}

/// Kill key slot `slot`: `cryptsetup luksKillSlot --key-file=- PATH SLOT`, with a
/// passphrase that opens another slot. Never `--batch-mode`, and moord refuses
/// when `slot` is not active or is the last active one ([`Guard::LuksOtherSlot`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksRemoveKey {
    pub target: LuksTarget,
    pub slot: u8,
    pub passphrase: SecretText,
}

impl TypedOp for LuksRemoveKey {
    const NAME: &'static str = "luks.remove_key";
}

impl LuksRemoveKey {
    pub fn plan(self) -> Result<Plan, OpError> {
        const OP: &str = LuksRemoveKey::NAME;
        self.target.check(OP)?;
        check_slot(OP, self.slot)?;
        check_secret(OP, "passphrase", &self.passphrase)?;
        let path = self.target.path();
        let a = argv(&[
            "cryptsetup",
            "luksKillSlot",
            "--key-file=-",
            &path,
            &self.slot.to_string(),
        ]);
        let guard = Guard::All(vec![
            self.target.identity(),
            Guard::LuksOtherSlot {
                path,
                slot: self.slot,
            },
        ]);
        Ok(secret_exec_plan(
            a,
            Some(secret(&self.passphrase)),
            Some(guard),
        ))
    }
}

/// Check a passphrase without mapping anything: `cryptsetup open --test-passphrase
/// --verbose [--key-slot S] --key-file=- PATH` (exit 0 and "Key slot N unlocked."
/// on stdout, exit 2 for a wrong passphrase).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksTestKey {
    pub target: LuksTarget,
    pub passphrase: SecretText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u8>,
}

impl TypedOp for LuksTestKey {
    const NAME: &'static str = "luks.test_key";
}

impl LuksTestKey {
    pub fn plan(self) -> Result<Plan, OpError> {
        const OP: &str = LuksTestKey::NAME;
        self.target.check(OP)?;
        check_secret(OP, "passphrase", &self.passphrase)?;
        let mut a = argv(&["cryptsetup", "open", "--test-passphrase", "--verbose"]);
        if let Some(s) = self.slot {
            check_slot(OP, s)?;
            a.extend(["--key-slot".to_string(), s.to_string()]);
        }
        a.extend(["--key-file=-".to_string(), self.target.path()]);
        Ok(secret_exec_plan(
            a,
            Some(secret(&self.passphrase)),
            Some(self.target.identity()),
        ))
    }
}

/// `cryptsetup luksDump PATH`: the header, as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksDump {
    pub target: LuksTarget,
}

impl TypedOp for LuksDump {
    const NAME: &'static str = "luks.dump";
}

impl LuksDump {
    pub fn plan(self) -> Result<Plan, OpError> {
        self.target.check(Self::NAME)?;
        let path = self.target.path();
        Ok(secret_exec_plan(
            argv(&["cryptsetup", "luksDump", &path]),
            None,
            Some(self.target.identity()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ExecPlan, plan};
    use super::*;

    const WWID: &str = "36001405abcdef0123456789abcdef012";

    fn exec(op: &str, args: serde_json::Value) -> ExecPlan {
        match plan(op, &args.to_string()) {
            Ok(Plan::Exec(e)) => e,
            other => panic!("{op} {args}: {other:?}"),
        }
    }

    fn refused(op: &str, args: serde_json::Value) -> String {
        match plan(op, &args.to_string()) {
            Err(e @ OpError::BadArgs { .. }) => e.to_string(),
            other => panic!("{op} {args} was not refused: {other:?}"),
        }
    }

    fn dev() -> serde_json::Value {
        serde_json::json!({"device": {"name": "sdb", "expected_wwid": WWID}})
    }

    fn wwid_guard() -> Guard {
        Guard::Wwid {
            device: "sdb".into(),
            expected: WWID.into(),
        }
    }

    #[test]
    fn target_wire_shape() {
        let t: LuksTarget = serde_json::from_value(dev()).unwrap();
        assert_eq!(t.path(), "/dev/sdb");
        let i: LuksTarget = serde_json::from_str(r#"{"image":{"path":"/var/lib/x.img"}}"#).unwrap();
        assert_eq!(i.path(), "/var/lib/x.img");
        assert_eq!(
            serde_json::to_string(&i).unwrap(),
            r#"{"image":{"path":"/var/lib/x.img"}}"#
        );
        assert!(serde_json::from_str::<LuksTarget>(r#"{"image":{"path":"/x","mode":1}}"#).is_err());
        let p: LuksPbkdf = serde_json::from_str(r#"{"algorithm":"argon2id"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"algorithm":"argon2id"}"#
        );
        assert!(serde_json::from_str::<LuksPbkdf>(r#"{"iterations":1}"#).is_err());
    }

    #[test]
    fn an_nvme_namespace_is_a_luks_target_guarded_by_its_wwid() {
        let nvme_wwid = "uuid.0b7c1c55-0a1e-4a43-9d37-5c1f0e3a1111";
        let e = exec(
            "luks.open",
            serde_json::json!({"target": {"device": {"name": "nvme0n1", "expected_wwid": nvme_wwid}},
                "name": "crypt-v1", "mode": "luks", "passphrase": "s3cret-pass"}),
        );
        assert_eq!(e.argv.last().map(String::as_str), Some("crypt-v1"));
        assert!(e.argv.iter().any(|a| a == "/dev/nvme0n1"), "{:?}", e.argv);
        assert!(
            format!("{:?}", e.guard).contains(nvme_wwid),
            "{:?}",
            e.guard
        );
    }

    #[test]
    fn format_plans_argv_stdin_and_guards() {
        let e = exec(
            "luks.format",
            serde_json::json!({"target": dev(), "version": "luks2", "passphrase": "s3cret"}),
        );
        assert_eq!(
            e.argv,
            [
                "cryptsetup",
                "--batch-mode",
                "luksFormat",
                "--type",
                "luks2",
                "--key-file=-",
                "/dev/sdb"
            ]
        );
        assert_eq!(e.secret_stdin.as_ref().unwrap().expose(), b"s3cret");
        assert!(e.stdin.is_none());
        assert_eq!(
            e.guard,
            Some(Guard::All(vec![
                wwid_guard(),
                Guard::Blank {
                    path: "/dev/sdb".into()
                }
            ]))
        );
        let e = exec(
            "luks.format",
            serde_json::json!({
                "target": {"image": {"path": "/var/lib/moor/v.img"}},
                "version": "luks1", "cipher": "aes-xts-plain64", "key_size": 512,
                "pbkdf": {"algorithm": "pbkdf2", "force_iterations": 1000},
                "passphrase": "pw"
            }),
        );
        assert_eq!(
            e.argv[4..],
            [
                "luks1",
                "--cipher",
                "aes-xts-plain64",
                "--key-size",
                "512",
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
                "--key-file=-",
                "/var/lib/moor/v.img"
            ]
        );
        let path = "/var/lib/moor/v.img".to_string();
        assert_eq!(
            e.guard,
            Some(Guard::All(vec![
                Guard::RegularFile { path: path.clone() },
                Guard::Blank { path }
            ]))
        );
        let e = exec(
            "luks.format",
            serde_json::json!({"target": dev(), "version": "luks2", "passphrase": "pw",
                "pbkdf": {"algorithm": "argon2id", "iter_time_ms": 2000, "memory_kib": 65536}}),
        );
        assert_eq!(
            e.argv[5..11],
            [
                "--pbkdf",
                "argon2id",
                "--iter-time",
                "2000",
                "--pbkdf-memory",
                "65536"
            ]
        );
    }

    #[test]
    fn arguments_are_validated_without_echoing_secrets() {
        let fmt = |extra: serde_json::Value| {
            let mut a = serde_json::json!({"target": dev(), "version": "luks2", "passphrase": "Zq9-secret"});
            for (k, v) in extra.as_object().unwrap() {
                a[k] = v.clone();
            }
            a
        };
        for (extra, field) in [
            (serde_json::json!({"cipher": "AES"}), "cipher"),
            (serde_json::json!({"cipher": "--batch-mode"}), "cipher"),
            (serde_json::json!({"cipher": "123"}), "cipher"),
            (serde_json::json!({"cipher": "aes xts"}), "cipher"),
            (serde_json::json!({"key_size": 0}), "key_size"),
            (serde_json::json!({"key_size": 513}), "key_size"),
            (serde_json::json!({"key_size": 4104}), "key_size"),
            (
                serde_json::json!({"pbkdf": {"iter_time_ms": 0}}),
                "iter_time_ms",
            ),
            (
                serde_json::json!({"pbkdf": {"force_iterations": 999}}),
                "force_iterations",
            ),
            (
                serde_json::json!({"pbkdf": {"memory_kib": 16}}),
                "memory_kib",
            ),
            (
                serde_json::json!({"pbkdf": {"iter_time_ms": 5, "force_iterations": 1000}}),
                "force_iterations",
            ),
            (
                serde_json::json!({"version": "luks1", "pbkdf": {"algorithm": "argon2i"}}),
                "LUKS1",
            ),
            (
                serde_json::json!({"target": {"image": {"path": "var/x.img"}}}),
                "path",
            ),
            (
                serde_json::json!({"target": {"image": {"path": "/var/../x.img"}}}),
                "path",
            ),
            (
                serde_json::json!({"target": {"device": {"name": "sdb1", "expected_wwid": WWID}}}),
                "device",
            ),
            (
                // A hidden path of an NVMe multipath head is never a LUKS target.
                serde_json::json!({"target": {"device": {"name": "nvme0c1n1", "expected_wwid": WWID}}}),
                "device",
            ),
            (
                serde_json::json!({"target": {"device": {"name": "sdb", "expected_wwid": ""}}}),
                "expected_wwid",
            ),
            (serde_json::json!({"passphrase": ""}), "passphrase"),
            (
                serde_json::json!({"passphrase": "a\u{0}Zq9-secret"}),
                "passphrase",
            ),
            (
                serde_json::json!({"passphrase": "Zq9-secret".repeat(1000)}),
                "passphrase",
            ),
        ] {
            let msg = refused("luks.format", fmt(extra.clone()));
            assert!(msg.contains(field), "{extra}: {msg}");
            assert!(!msg.contains("Zq9"), "{extra}: the secret leaked: {msg}");
        }
        // Unknown fields are refused.
        refused("luks.format", fmt(serde_json::json!({"header": "/tmp/h"})));
        let open = |name: &str| serde_json::json!({"target": dev(), "name": name, "mode": "luks", "passphrase": "pw"});
        exec("luks.open", open("crypt-volume-1.a_b+c"));
        for name in [
            "luks-1234",
            "crypt-",
            "crypt-a/b",
            "crypt-a b",
            &format!("crypt-{}", "a".repeat(122)),
        ] {
            assert!(refused("luks.open", open(name)).contains("name"), "{name}");
        }
        exec("luks.open", open(&format!("crypt-{}", "a".repeat(121))));
        let mut a = open("crypt-x");
        a["cipher"] = "aes-xts-plain64".into();
        assert!(refused("luks.open", a).contains("plain"));
        let close = |backing: &str| serde_json::json!({"name": "crypt-x", "backing": backing, "expected_wwid": WWID});
        exec("luks.close", close("dm-3"));
        assert!(refused("luks.close", close("sdb1")).contains("backing"));
        refused("luks.close", close("/dev/sdb"));
        let rm = |slot: u32| serde_json::json!({"target": dev(), "slot": slot, "passphrase": "pw"});
        exec("luks.remove_key", rm(31));
        assert!(refused("luks.remove_key", rm(32)).contains("slot"));
        refused("luks.remove_key", rm(256));
        let add = serde_json::json!({"target": dev(), "passphrase": "Zq9-same", "new_passphrase": "Zq9-same"});
        let msg = refused("luks.add_key", add);
        assert!(
            msg.contains("new_passphrase") && !msg.contains("Zq9"),
            "{msg}"
        );
    }

    #[test]
    fn open_close_resize_plans() {
        let e = exec(
            "luks.open",
            serde_json::json!({"target": dev(), "name": "crypt-v", "mode": "luks", "read_only": true, "passphrase": "pw"}),
        );
        assert_eq!(
            e.argv,
            [
                "cryptsetup",
                "luksOpen",
                "--readonly",
                "--key-file=-",
                "/dev/sdb",
                "crypt-v"
            ]
        );
        assert_eq!(e.guard, Some(wwid_guard()));
        assert_eq!(e.secret_stdin.unwrap().expose(), b"pw");
        // os-brick's CryptsetupEncryptor argv.
        let e = exec(
            "luks.open",
            serde_json::json!({"target": dev(), "name": "crypt-v", "mode": "plain",
                "cipher": "aes-cbc-essiv:sha256", "key_size": 256, "passphrase": "pw"}),
        );
        assert_eq!(
            e.argv,
            [
                "cryptsetup",
                "create",
                "--key-file=-",
                "--cipher",
                "aes-cbc-essiv:sha256",
                "--key-size",
                "256",
                "crypt-v",
                "/dev/sdb"
            ]
        );
        let guard = Some(Guard::CryptMapping {
            name: "crypt-v".into(),
            backing: "dm-2".into(),
            expected_wwid: WWID.into(),
        });
        let ids = serde_json::json!({"name": "crypt-v", "backing": "dm-2", "expected_wwid": WWID});
        let e = exec("luks.close", ids.clone());
        assert_eq!(e.argv, ["cryptsetup", "close", "crypt-v"]);
        assert_eq!((e.guard, e.secret_stdin.is_none()), (guard.clone(), true));
        let e = exec("luks.resize", ids.clone());
        assert_eq!(e.argv, ["cryptsetup", "resize", "crypt-v"]);
        assert!(e.secret_stdin.is_none());
        let mut with = ids;
        with["passphrase"] = "pw".into();
        let e = exec("luks.resize", with);
        assert_eq!(e.argv, ["cryptsetup", "resize", "--key-file=-", "crypt-v"]);
        assert_eq!(e.guard, guard);
        assert_eq!(e.secret_stdin.unwrap().expose(), b"pw");
    }

    #[test]
    fn key_slot_plans() {
        let e = exec(
            "luks.add_key",
            serde_json::json!({"target": dev(), "passphrase": "old", "new_passphrase": "new!",
                "pbkdf": {"algorithm": "pbkdf2", "force_iterations": 1000}}),
        );
        assert_eq!(
            e.argv,
            [
                "cryptsetup",
                "luksAddKey",
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
                "--key-file=-",
                "--keyfile-size=3",
                "--new-keyfile=-",
                "--new-keyfile-size=4",
                "/dev/sdb"
            ]
        );
        assert_eq!(e.secret_stdin.unwrap().expose(), b"oldnew!");
        assert_eq!(e.guard, Some(wwid_guard()));
        // Sizes are bytes, not characters.
        let e = exec(
            "luks.add_key",
            serde_json::json!({"target": dev(), "passphrase": "é", "new_passphrase": "ab"}),
        );
        assert_eq!(e.argv[3], "--keyfile-size=2");
        let e = exec(
            "luks.remove_key",
            serde_json::json!({"target": dev(), "slot": 1, "passphrase": "pw"}),
        );
        assert_eq!(
            e.argv,
            [
                "cryptsetup",
                "luksKillSlot",
                "--key-file=-",
                "/dev/sdb",
                "1"
            ]
        );
        assert_eq!(
            e.guard,
            Some(Guard::All(vec![
                wwid_guard(),
                Guard::LuksOtherSlot {
                    path: "/dev/sdb".into(),
                    slot: 1
                }
            ]))
        );
        let e = exec(
            "luks.test_key",
            serde_json::json!({"target": dev(), "passphrase": "pw", "slot": 3}),
        );
        assert_eq!(
            e.argv,
            [
                "cryptsetup",
                "open",
                "--test-passphrase",
                "--verbose",
                "--key-slot",
                "3",
                "--key-file=-",
                "/dev/sdb"
            ]
        );
        let e = exec("luks.dump", serde_json::json!({"target": dev()}));
        assert_eq!(e.argv, ["cryptsetup", "luksDump", "/dev/sdb"]);
        assert!(e.secret_stdin.is_none());
        let e = exec("luks.is_luks", serde_json::json!({"target": dev()}));
        assert_eq!(e.argv, ["cryptsetup", "isLuks", "/dev/sdb"]);
        assert_eq!(e.guard, Some(wwid_guard()));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let a: LuksAddKey = serde_json::from_value(serde_json::json!({
            "target": dev(), "passphrase": "Zq9-old", "new_passphrase": "Zq9-new"
        }))
        .unwrap();
        assert!(!format!("{a:?}").contains("Zq9"));
        let Ok(Plan::Exec(e)) = a.plan() else {
            panic!("plan")
        };
        assert!(!format!("{e:?}").contains("Zq9"));
    }
}
