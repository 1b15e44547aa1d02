//! Encrypted volumes at run time: open (formatting a new volume first), close,
//! resize and rekey through moord's `luks.*` operations (docs/encryption.md).
//!
//! The decrypted mapping is `/dev/mapper/crypt-<volume_id>`: its name comes from the
//! volume, moor creates it and nothing else may hold that name, so no udev event of
//! another device can retarget it (the failure os-brick's private by-id links work
//! around). Before closing or resizing, moord checks that the mapping is a crypt
//! mapping sitting on the volume's device and that the device still carries the
//! WWID captured at attach.

use std::time::Instant;

use moor_privhelper::ops::{
    CryptMode, LuksAddKey, LuksClose, LuksDump, LuksFormat, LuksIsLuks, LuksOpen, LuksPbkdf,
    LuksRemoveKey, LuksResize, LuksTarget, LuksTestKey, LuksVersion, SecretText, TypedOp,
};
use serde::{Deserialize, Serialize};

use super::{EncryptionProps, Passphrase, Provider};
use crate::exec::{ExecOutput, PrivError, Privileged, run_exec};
use crate::host::udev::{DeviceEvents, WaitError, wait_for, wait_for_removal};
use crate::host::{HostError, HostPaths};

/// cryptsetup's exit status for "no key slot matches this passphrase".
const EXIT_WRONG_KEY: i32 = 2;
/// cryptsetup's exit status for "no such device" (close of a mapping that is gone).
const EXIT_NO_DEVICE: i32 = 4;
/// cryptsetup's exit status for "device already exists or is busy".
const EXIT_BUSY: i32 = 5;
/// LUKS2 has 32 key slots (LUKS1 8): an upper bound for any loop over slots.
const MAX_SLOTS: usize = 32;

/// What the encryption sits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A whole block device (`sdX`, `dm-N`) and the WWID captured when the
    /// transport attached it.
    Device { name: String, wwid: String },
    /// A volume image file (which files moord may touch is for its filters to say).
    Image { path: String },
}

impl Backing {
    fn target(&self) -> LuksTarget {
        match self {
            Backing::Device { name, wwid } => LuksTarget::Device {
                name: name.clone(),
                expected_wwid: wwid.clone(),
            },
            Backing::Image { path } => LuksTarget::Image { path: path.clone() },
        }
    }

    fn describe(&self) -> String {
        match self {
            Backing::Device { name, .. } => format!("/dev/{name}"),
            Backing::Image { path } => path.clone(),
        }
    }
}

/// The decrypted side of an encrypted attachment, recorded in `device_info`
/// (`"encryption"`) so detach and extend find it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedVolume {
    /// `luks`, `luks2` or `plain`.
    pub provider: String,
    /// The mapping's name, `crypt-<volume_id>`.
    pub mapping: String,
    /// The path the transport returned (what `path` was before encryption).
    pub device_path: String,
    /// The encrypted device (`sdX`, `dm-N`).
    pub backing: String,
}

/// The result of [`Encryptor::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// `/dev/mapper/crypt-<volume_id>`.
    pub path: String,
    pub mapping: String,
    /// The mapping's `dm-N`.
    pub dm: String,
    /// This attach wrote a new LUKS header (first use of a new volume).
    pub formatted: bool,
    /// The mapping was already open on this device (repeated attach).
    pub reused: bool,
}

/// What a rekey did, slot by slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RekeyReport {
    /// The slot the new secret opens.
    pub new_slot: u8,
    /// Slots that held the old secret and were removed.
    pub removed_slots: Vec<u8>,
    /// The new secret was already in a slot (an interrupted rekey was resumed).
    pub resumed: bool,
    /// Active key slots after the rekey.
    pub active_slots: Vec<u8>,
}

/// Everything the encryption layer can fail with. Never contains secret bytes.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Privileged(#[from] PrivError),
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error("the {which} secret does not open {target} (no key slot matches); nothing was opened")]
    WrongSecret { which: &'static str, target: String },
    #[error("{target} is not LUKS and was not formatted: {reason}")]
    NotFormatted { target: String, reason: String },
    #[error("mapping {mapping} already exists on {found}, not on {expected}; not touched")]
    MappingConflict {
        mapping: String,
        found: String,
        expected: String,
    },
    #[error("{mapping} is in use (open by a guest or mounted); close it first")]
    Busy { mapping: String },
    #[error("{op} failed: {detail}")]
    Cryptsetup { op: &'static str, detail: String },
    #[error("the current and the new secret are the same key (slot {slot})")]
    SameSecret { slot: u8 },
    #[error("dry run stops here: {0}")]
    DryRun(String),
}

/// Settings for new key slots and first-use formatting.
#[derive(Debug, Clone, Default)]
pub struct LuksSettings {
    /// Key-derivation cost of new key slots (`None`: cryptsetup's defaults).
    pub pbkdf: Option<LuksPbkdf>,
    /// Refuse to format a volume that is not LUKS yet (instead of formatting it on
    /// first use, as os-brick does).
    pub no_format: bool,
}

/// Runs the `luks.*` operations for one host.
pub struct Encryptor<'a> {
    pub paths: HostPaths,
    pub privileged: &'a dyn Privileged,
    pub events: &'a dyn DeviceEvents,
    pub settings: LuksSettings,
}

impl std::fmt::Debug for Encryptor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("paths", &self.paths)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn secret(p: &Passphrase) -> SecretText {
    SecretText::new(String::from_utf8_lossy(p.as_bytes()).into_owned())
}

fn failed(op: &'static str, out: &ExecOutput) -> CryptError {
    CryptError::Cryptsetup {
        op,
        detail: out.summary(),
    }
}

/// The slot `cryptsetup open --test-passphrase --verbose` reports ("Key slot 1
/// unlocked.").
fn unlocked_slot(out: &ExecOutput) -> Option<u8> {
    out.stdout.lines().chain(out.stderr.lines()).find_map(|l| {
        l.trim()
            .strip_prefix("Key slot ")?
            .strip_suffix(" unlocked.")?
            .parse()
            .ok()
    })
}

/// Active key slots in `cryptsetup luksDump` output: LUKS1 prints `Key Slot 3:
/// ENABLED`, LUKS2 lists `  3: luks2` under `Keyslots:`.
pub fn active_slots(dump: &str) -> Vec<u8> {
    let mut slots = Vec::new();
    let mut in_keyslots = false;
    for line in dump.lines() {
        if let Some(rest) = line.strip_prefix("Key Slot ") {
            if let Some((n, state)) = rest.split_once(':')
                && state.trim() == "ENABLED"
                && let Ok(n) = n.trim().parse()
            {
                slots.push(n);
            }
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            in_keyslots = line.trim_end() == "Keyslots:";
            continue;
        }
        // LUKS2 slot headers are indented once (`  0: luks2`); their details more.
        if in_keyslots
            && let Some((n, kind)) = line.trim().split_once(':')
            && !kind.trim().is_empty()
            && line.starts_with("  ")
            && !line.starts_with("   ")
            && let Ok(n) = n.trim().parse()
        {
            slots.push(n);
        }
    }
    slots.sort_unstable();
    slots.dedup();
    slots
}

impl Encryptor<'_> {
    fn exec<T: TypedOp>(&self, op: &T, deadline: Instant) -> Result<ExecOutput, CryptError> {
        Ok(run_exec(self.privileged, op, deadline)?)
    }

    /// True when `target` carries a LUKS header (`cryptsetup isLuks`).
    pub fn is_luks(&self, target: &Backing, deadline: Instant) -> Result<bool, CryptError> {
        let out = self.exec(
            &LuksIsLuks {
                target: target.target(),
            },
            deadline,
        )?;
        match out.exit_code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(failed(LuksIsLuks::NAME, &out)),
        }
    }

    /// Writes a new LUKS header (version from the provider, cipher and key size
    /// from the metadata). moord refuses when the target carries any recognisable
    /// header or filesystem: only a blank volume is ever formatted.
    pub fn format(
        &self,
        enc: &EncryptionProps,
        target: &Backing,
        pass: &Passphrase,
        deadline: Instant,
    ) -> Result<(), CryptError> {
        let version = match enc.provider {
            Some(Provider::Luks) => LuksVersion::Luks1,
            Some(Provider::Luks2) => LuksVersion::Luks2,
            Some(Provider::Plain) | None => {
                return Err(CryptError::NotFormatted {
                    target: target.describe(),
                    reason: format!(
                        "provider {} has no header to format",
                        enc.provider.map_or("none", Provider::as_str)
                    ),
                });
            }
        };
        let op = LuksFormat {
            target: target.target(),
            version,
            cipher: enc.cipher.clone(),
            key_size: enc.key_size,
            pbkdf: self.settings.pbkdf.clone(),
            passphrase: secret(pass),
        };
        tracing::info!(target = %target.describe(), ?version, "formatting a new encrypted volume");
        match run_exec(self.privileged, &op, deadline) {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => Err(failed(LuksFormat::NAME, &out)),
            Err(PrivError::Refused { code, message, .. }) if code == "precondition_failed" => {
                Err(CryptError::NotFormatted {
                    target: target.describe(),
                    reason: message,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Formats `target` when it is not LUKS yet (and formatting is allowed);
    /// returns whether it did.
    pub fn format_if_new(
        &self,
        enc: &EncryptionProps,
        target: &Backing,
        pass: &Passphrase,
        deadline: Instant,
    ) -> Result<bool, CryptError> {
        if self.privileged.dry_run() {
            return Err(CryptError::DryRun(format!(
                "whether {} is LUKS decides whether it is formatted",
                target.describe()
            )));
        }
        if self.is_luks(target, deadline)? {
            return Ok(false);
        }
        if self.settings.no_format {
            return Err(CryptError::NotFormatted {
                target: target.describe(),
                reason: "formatting new volumes is disabled".into(),
            });
        }
        self.format(enc, target, pass, deadline)?;
        Ok(true)
    }

    /// The `dm-N` whose device-mapper name is `mapping`, if any.
    pub fn find_mapping(&self, mapping: &str) -> Result<Option<String>, HostError> {
        for dm in self.paths.list_prefixed(&self.paths.sys("block"), "dm-")? {
            let name = self
                .paths
                .read_attr(&self.paths.sys(&format!("block/{dm}/dm/name")))?;
            if name.as_deref() == Some(mapping) {
                return Ok(Some(dm));
            }
        }
        Ok(None)
    }

    /// What mapping `dm` sits on (its single slave), checked to be a crypt mapping.
    fn mapping_backing(&self, dm: &str) -> Result<Result<String, String>, CryptError> {
        let uuid = self
            .paths
            .read_attr(&self.paths.sys(&format!("block/{dm}/dm/uuid")))?
            .unwrap_or_default();
        if !uuid.starts_with("CRYPT-") {
            return Ok(Err(format!("{dm}, which is not a dm-crypt mapping")));
        }
        let slaves = self
            .paths
            .list_dir(&self.paths.sys(&format!("block/{dm}/slaves")))?
            .unwrap_or_default();
        Ok(match slaves.as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!("{dm} over [{}]", other.join(", "))),
        })
    }

    /// Opens the volume's mapping on `backing` (formatting a new LUKS volume first)
    /// and waits until `/dev/mapper/<mapping>` is there. An existing mapping of the
    /// same name on the same device is reused; on another device it is refused.
    pub fn open(
        &self,
        enc: &EncryptionProps,
        mapping: &str,
        backing: &Backing,
        pass: &Passphrase,
        read_only: bool,
        deadline: Instant,
    ) -> Result<Opened, CryptError> {
        let provider = enc.provider.ok_or_else(|| CryptError::NotFormatted {
            target: backing.describe(),
            reason: "the metadata names no front-end provider".into(),
        })?;
        let Backing::Device { name, .. } = backing else {
            return Err(CryptError::NotFormatted {
                target: backing.describe(),
                reason: "only block devices are opened (images are decrypted by the hypervisor)"
                    .into(),
            });
        };
        let opened = |dm: String, formatted, reused| Opened {
            path: format!("/dev/mapper/{mapping}"),
            mapping: mapping.to_string(),
            dm,
            formatted,
            reused,
        };
        if let Some(dm) = self.find_mapping(mapping)? {
            return match self.mapping_backing(&dm)? {
                Ok(b) if b == *name => {
                    tracing::info!(%mapping, %dm, "encrypted mapping already open on this device");
                    Ok(opened(dm, false, true))
                }
                Ok(b) => Err(CryptError::MappingConflict {
                    mapping: mapping.into(),
                    found: format!("/dev/{b}"),
                    expected: backing.describe(),
                }),
                Err(found) => Err(CryptError::MappingConflict {
                    mapping: mapping.into(),
                    found,
                    expected: backing.describe(),
                }),
            };
        }
        let formatted = match provider {
            Provider::Plain => false,
            Provider::Luks | Provider::Luks2 => self.format_if_new(enc, backing, pass, deadline)?,
        };
        let (mode, cipher, key_size) = match provider {
            Provider::Plain => (CryptMode::Plain, enc.cipher.clone(), enc.key_size),
            // A LUKS header carries its own cipher and key size.
            Provider::Luks | Provider::Luks2 => (CryptMode::Luks, None, None),
        };
        let op = LuksOpen {
            target: backing.target(),
            name: mapping.to_string(),
            mode,
            cipher,
            key_size,
            read_only,
            passphrase: secret(pass),
        };
        let out = self.exec(&op, deadline)?;
        match out.exit_code {
            Some(0) => {}
            Some(EXIT_WRONG_KEY) => {
                return Err(CryptError::WrongSecret {
                    which: "volume's",
                    target: backing.describe(),
                });
            }
            Some(EXIT_BUSY) => {
                return Err(CryptError::Busy {
                    mapping: mapping.into(),
                });
            }
            _ => return Err(failed(LuksOpen::NAME, &out)),
        }
        let mut watch = self.events.watch()?;
        let link = self.paths.dev(&format!("mapper/{mapping}"));
        let dm = wait_for(&mut *watch, deadline, &link.display().to_string(), || {
            let Some(dm) = self.find_mapping(mapping)? else {
                return Ok(None);
            };
            Ok(self.paths.resolve(&link)?.map(|_| dm))
        })?;
        tracing::info!(%mapping, %dm, formatted, "encrypted volume open");
        Ok(opened(dm, formatted, false))
    }

    /// Closes the volume's mapping if it is open (idempotent) and waits until it
    /// is gone. moord checks first that it is a crypt mapping over `backing` and
    /// that `backing` still carries its WWID. Returns whether a mapping was closed.
    pub fn close(
        &self,
        mapping: &str,
        backing: &str,
        wwid: &str,
        deadline: Instant,
    ) -> Result<bool, CryptError> {
        let Some(dm) = self.find_mapping(mapping)? else {
            tracing::info!(%mapping, "encrypted mapping not open; nothing to close");
            return Ok(false);
        };
        let op = LuksClose {
            name: mapping.into(),
            backing: backing.into(),
            expected_wwid: wwid.into(),
        };
        let out = self.exec(&op, deadline)?;
        match out.exit_code {
            Some(0) | Some(EXIT_NO_DEVICE) => {}
            Some(EXIT_BUSY) => {
                return Err(CryptError::Busy {
                    mapping: mapping.into(),
                });
            }
            _ => return Err(failed(LuksClose::NAME, &out)),
        }
        if !self.privileged.dry_run() {
            let mut watch = self.events.watch()?;
            wait_for_removal(&self.paths, &mut *watch, &dm, deadline)?;
        }
        tracing::info!(%mapping, %dm, "encrypted mapping closed");
        Ok(true)
    }

    /// Grows the open mapping to its device's new size (after the transport's
    /// extend); returns the mapping's size in bytes.
    pub fn resize(
        &self,
        enc: &EncryptionProps,
        mapping: &str,
        backing: &str,
        wwid: &str,
        pass: &Passphrase,
        deadline: Instant,
    ) -> Result<u64, CryptError> {
        let dm = self
            .find_mapping(mapping)?
            .ok_or_else(|| CryptError::Cryptsetup {
                op: LuksResize::NAME,
                detail: format!("mapping {mapping} is not open"),
            })?;
        // LUKS2 keeps the volume key in the kernel keyring: resize needs the
        // passphrase. Plain mappings carry their key in the table.
        let passphrase = match enc.provider {
            Some(Provider::Plain) => None,
            _ => Some(secret(pass)),
        };
        let op = LuksResize {
            name: mapping.into(),
            backing: backing.into(),
            expected_wwid: wwid.into(),
            passphrase,
        };
        let out = self.exec(&op, deadline)?;
        match out.exit_code {
            Some(0) => {}
            Some(EXIT_WRONG_KEY) => {
                return Err(CryptError::WrongSecret {
                    which: "volume's",
                    target: format!("/dev/{backing}"),
                });
            }
            _ => return Err(failed(LuksResize::NAME, &out)),
        }
        let sectors = self
            .paths
            .read_attr(&self.paths.sys(&format!("block/{dm}/size")))?
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        Ok(sectors * 512)
    }

    /// The key slot `pass` opens, or `None` when it opens none.
    pub fn test_key(
        &self,
        target: &Backing,
        pass: &Passphrase,
        deadline: Instant,
    ) -> Result<Option<u8>, CryptError> {
        let op = LuksTestKey {
            target: target.target(),
            passphrase: secret(pass),
            slot: None,
        };
        let out = self.exec(&op, deadline)?;
        match out.exit_code {
            Some(0) => unlocked_slot(&out)
                .map(Some)
                .ok_or_else(|| CryptError::Cryptsetup {
                    op: LuksTestKey::NAME,
                    detail: "the passphrase opened the volume but cryptsetup named no key slot"
                        .into(),
                }),
            Some(EXIT_WRONG_KEY) => Ok(None),
            _ => Err(failed(LuksTestKey::NAME, &out)),
        }
    }

    /// Active key slots (`cryptsetup luksDump`).
    pub fn slots(&self, target: &Backing, deadline: Instant) -> Result<Vec<u8>, CryptError> {
        let out = self.exec(
            &LuksDump {
                target: target.target(),
            },
            deadline,
        )?;
        if !out.success() {
            return Err(failed(LuksDump::NAME, &out));
        }
        Ok(active_slots(&out.stdout))
    }

    /// Replaces the secret `old` by `new` in a crash-safe order: add a slot for
    /// `new`, check that `new` opens it, then remove every slot `old` opens (moord
    /// refuses to remove the last active slot). Run again after an interruption it
    /// resumes: a `new` that already opens a slot is not added twice, and an `old`
    /// that no longer opens anything while `new` does means the rekey was done.
    pub fn rekey(
        &self,
        target: &Backing,
        old: &Passphrase,
        new: &Passphrase,
        deadline: Instant,
    ) -> Result<RekeyReport, CryptError> {
        if self.privileged.dry_run() {
            return Err(CryptError::DryRun(
                "which slots the secrets open decides every later step".into(),
            ));
        }
        let old_slot = self.test_key(target, old, deadline)?;
        let existing = self.test_key(target, new, deadline)?;
        let (new_slot, resumed) = match (old_slot, existing) {
            (None, None) => {
                return Err(CryptError::WrongSecret {
                    which: "current",
                    target: target.describe(),
                });
            }
            (Some(o), Some(n)) if o == n => return Err(CryptError::SameSecret { slot: o }),
            (_, Some(n)) => (n, true),
            (Some(_), None) => {
                let op = LuksAddKey {
                    target: target.target(),
                    passphrase: secret(old),
                    new_passphrase: secret(new),
                    pbkdf: self.settings.pbkdf.clone(),
                };
                let out = self.exec(&op, deadline)?;
                if !out.success() {
                    return Err(failed(LuksAddKey::NAME, &out));
                }
                let n = self
                    .test_key(target, new, deadline)?
                    .ok_or_else(|| CryptError::Cryptsetup {
                        op: LuksAddKey::NAME,
                        detail: "the new secret does not open the slot just added; the current secret still works".into(),
                    })?;
                tracing::info!(target = %target.describe(), slot = n, "new key slot added and verified");
                (n, false)
            }
        };
        let mut removed = Vec::new();
        let mut next = old_slot;
        while let Some(slot) = next {
            if slot == new_slot || removed.contains(&slot) || removed.len() >= MAX_SLOTS {
                return Err(CryptError::Cryptsetup {
                    op: LuksRemoveKey::NAME,
                    detail: format!("the current secret still opens slot {slot}"),
                });
            }
            let op = LuksRemoveKey {
                target: target.target(),
                slot,
                passphrase: secret(new),
            };
            let out = self.exec(&op, deadline)?;
            if !out.success() {
                return Err(failed(LuksRemoveKey::NAME, &out));
            }
            tracing::info!(target = %target.describe(), slot, "old key slot removed");
            removed.push(slot);
            next = self.test_key(target, old, deadline)?;
        }
        Ok(RekeyReport {
            new_slot,
            removed_slots: removed,
            resumed,
            active_slots: self.slots(target, deadline)?,
        })
    }
}

#[cfg(test)]
#[path = "dmcrypt_tests.rs"]
mod tests;
