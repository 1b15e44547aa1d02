//! Encryption on the command line: the `--encryption/--secret-file` options of
//! `moor connect|disconnect|extend`, and `moor luks format|rekey|status`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use moor_connector::encryption::{
    Backing, EncryptedVolume, EncryptionProps, Encryptor, LuksSettings, Passphrase, SecretKind,
};
use moor_connector::exec::Privileged;
use moor_connector::host::HostPaths;
use moor_connector::host::udev::UdevEvents;
use moor_privhelper::ops::{LuksPbkdf, PbkdfAlgorithm};

use crate::volume_cmd::{Common, read_json, setup};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SecretType {
    /// Raw key bytes from the key manager; the passphrase is their lower-case hex.
    Symmetric,
    /// A passphrase, used as-is.
    Passphrase,
}

impl From<SecretType> for SecretKind {
    fn from(t: SecretType) -> SecretKind {
        match t {
            SecretType::Symmetric => SecretKind::Symmetric,
            SecretType::Passphrase => SecretKind::Passphrase,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Pbkdf {
    Pbkdf2,
    Argon2i,
    Argon2id,
}

/// Key-derivation cost of new key slots (format, rekey).
#[derive(Debug, Args, Default)]
pub struct PbkdfArgs {
    /// PBKDF of new key slots (cryptsetup's default: argon2id for LUKS2, pbkdf2 for LUKS1).
    #[arg(long, value_name = "ALG")]
    luks_pbkdf: Option<Pbkdf>,
    /// Time the PBKDF should take to unlock, in milliseconds (cryptsetup: 2000).
    #[arg(long, value_name = "MS", conflicts_with = "luks_pbkdf_iterations")]
    luks_iter_time: Option<u32>,
    /// Fixed PBKDF iteration count instead of a benchmark (tests, slow hosts).
    #[arg(long, value_name = "N")]
    luks_pbkdf_iterations: Option<u32>,
    /// Memory cost of argon2 in KiB.
    #[arg(long, value_name = "KIB")]
    luks_pbkdf_memory: Option<u32>,
}

impl PbkdfArgs {
    fn to_pbkdf(&self) -> Option<LuksPbkdf> {
        let p = LuksPbkdf {
            algorithm: self.luks_pbkdf.map(|a| match a {
                Pbkdf::Pbkdf2 => PbkdfAlgorithm::Pbkdf2,
                Pbkdf::Argon2i => PbkdfAlgorithm::Argon2i,
                Pbkdf::Argon2id => PbkdfAlgorithm::Argon2id,
            }),
            iter_time_ms: self.luks_iter_time,
            force_iterations: self.luks_pbkdf_iterations,
            memory_kib: self.luks_pbkdf_memory,
        };
        (p != LuksPbkdf::default()).then_some(p)
    }
}

/// Encryption options of `moor connect|disconnect|extend`.
#[derive(Debug, Args)]
pub struct EncryptionArgs {
    /// The volume's encryption metadata JSON (provider, control_location, cipher,
    /// key_size, encryption_key_id), or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    encryption: Option<PathBuf>,
    /// The key manager's secret for the volume (raw bytes, nothing stripped), or
    /// `-` for stdin. Never pass a secret on the command line.
    #[arg(long, value_name = "FILE", requires = "encryption")]
    secret_file: Option<PathBuf>,
    /// The secret's type in the key manager.
    #[arg(long, value_name = "TYPE", default_value = "symmetric")]
    secret_type: SecretType,
    /// Refuse to format a volume that is not LUKS yet (default: format a blank
    /// volume on its first attach, as os-brick does).
    #[arg(long)]
    no_format: bool,
    #[command(flatten)]
    pbkdf: PbkdfArgs,
}

/// What `--encryption` asked for, when the host must decrypt.
pub struct Encryption {
    pub props: EncryptionProps,
    secret: Option<Passphrase>,
    pub settings: LuksSettings,
}

impl Encryption {
    /// The passphrase; `needed_for` names the step that needs it.
    pub fn passphrase(&self, needed_for: &str) -> Result<&Passphrase> {
        self.secret
            .as_ref()
            .with_context(|| format!("{needed_for} needs the volume's secret: pass --secret-file"))
    }
}

impl EncryptionArgs {
    /// Reads the metadata and the secret. `None` when no metadata was given or the
    /// host decrypts nothing (back-end encryption, provider none). `stdin_taken`
    /// names another option already reading stdin.
    pub fn load(&self, stdin_taken: Option<&str>) -> Result<Option<Encryption>> {
        let Some(meta) = &self.encryption else {
            return Ok(None);
        };
        let props = EncryptionProps::from_metadata(&read_json(meta, "encryption metadata")?)?;
        if !props.host_decrypts() {
            tracing::info!("encryption metadata: nothing for the host to decrypt");
            return Ok(None);
        }
        let secret = match &self.secret_file {
            None => None,
            Some(p) => {
                let stdin = |p: &PathBuf| p.as_os_str() == "-";
                if stdin(p) && (stdin(meta) || stdin_taken.is_some()) {
                    bail!(
                        "--secret-file - and {} cannot both read stdin",
                        stdin_taken.unwrap_or("--encryption -")
                    );
                }
                Some(Passphrase::from_secret_file(self.secret_type.into(), p)?)
            }
        };
        Ok(Some(Encryption {
            props,
            secret,
            settings: LuksSettings {
                pbkdf: self.pbkdf.to_pbkdf(),
                no_format: self.no_format,
            },
        }))
    }
}

/// The whole device behind `path` (`/dev/sdb`, `/dev/dm-3`, a link to one) under
/// `paths`.
pub fn device_name(paths: &HostPaths, path: &str) -> Result<String> {
    let rel = path
        .strip_prefix("/dev/")
        .with_context(|| format!("{path} is not under /dev"))?;
    let real = paths
        .resolve(&paths.dev(rel))?
        .with_context(|| format!("{path} does not exist"))?;
    real.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("{path} resolves to no device name"))
}

pub fn encryptor<'a>(
    paths: HostPaths,
    privileged: &'a dyn Privileged,
    events: &'a UdevEvents,
    settings: LuksSettings,
) -> Encryptor<'a> {
    Encryptor {
        paths,
        privileged,
        events,
        settings,
    }
}

/// The host side of an encrypted volume, whatever transport attached it: the
/// steps `moor connect|disconnect|extend` run around the transport's own.
pub struct HostCrypt<'a> {
    pub paths: HostPaths,
    pub privileged: &'a dyn Privileged,
    /// One deadline per step.
    pub timeout: Duration,
}

impl HostCrypt<'_> {
    fn encryptor<'e>(&'e self, events: &'e UdevEvents, settings: LuksSettings) -> Encryptor<'e> {
        encryptor(self.paths.clone(), self.privileged, events, settings)
    }

    /// Opens `mapping` on the attached device at `device_path`, whose identity
    /// moord re-checks (`wwid`), formatting a blank volume on first use. Returns
    /// the mapping's path and the record for device_info's `encryption`.
    pub fn open(
        &self,
        enc: &Encryption,
        mapping: &str,
        device_path: &str,
        wwid: String,
        read_only: bool,
    ) -> Result<(String, EncryptedVolume)> {
        let backing = device_name(&self.paths, device_path)?;
        let events = UdevEvents;
        let opened = self.encryptor(&events, enc.settings.clone()).open(
            &enc.props,
            mapping,
            &Backing::Device {
                name: backing.clone(),
                wwid,
            },
            enc.passphrase("attaching an encrypted volume")?,
            read_only,
            Instant::now() + self.timeout,
        )?;
        let record = EncryptedVolume {
            provider: enc
                .props
                .provider
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            mapping: opened.mapping,
            device_path: device_path.to_string(),
            backing,
        };
        Ok((opened.path, record))
    }

    /// Closes a volume's mapping before its detach: the one device_info records,
    /// else the one named `by_name` (when `--encryption` names a host-decrypted
    /// provider), whatever it sits on (moord refuses unless it is the volume's
    /// device, `wwid`). Nothing to do when neither exists.
    pub fn close(
        &self,
        recorded: Option<&EncryptedVolume>,
        by_name: Option<String>,
        wwid: impl FnOnce() -> Result<String>,
    ) -> Result<()> {
        let events = UdevEvents;
        let e = self.encryptor(&events, LuksSettings::default());
        let (mapping, backing) = match (recorded, by_name) {
            (Some(ev), _) => (ev.mapping.clone(), ev.backing.clone()),
            (None, Some(mapping)) => match e.find_mapping(&mapping)? {
                Some(dm) => {
                    let backing = self
                        .paths
                        .list_dir(&self.paths.sys(&format!("block/{dm}/slaves")))?
                        .unwrap_or_default()
                        .into_iter()
                        .next()
                        .with_context(|| format!("mapping {mapping} ({dm}) sits on no device"))?;
                    (mapping, backing)
                }
                None => return Ok(()),
            },
            (None, None) => return Ok(()),
        };
        e.close(&mapping, &backing, &wwid()?, Instant::now() + self.timeout)
            .with_context(|| format!("closing {mapping}; the volume was not detached"))?;
        Ok(())
    }

    /// Grows the volume's mapping after the transport's extend: its new size.
    pub fn resize(&self, enc: &Encryption, ev: &EncryptedVolume, wwid: &str) -> Result<u64> {
        let events = UdevEvents;
        Ok(self.encryptor(&events, enc.settings.clone()).resize(
            &enc.props,
            &ev.mapping,
            &ev.backing,
            wwid,
            enc.passphrase("resizing an encrypted volume")?,
            Instant::now() + self.timeout,
        )?)
    }
}

/// The decrypted mapping's name for a volume (`crypt-<volume_id>`).
pub fn mapping_for_volume(volume_id: Option<&str>) -> Result<String> {
    let id = volume_id.context(
        "an encrypted volume needs `volume_id` in its connection properties (the mapping is named after it)",
    )?;
    Ok(moor_connector::encryption::mapping_name(id)?)
}

/// An extend's JSON output for an encrypted volume: the size the guest sees is
/// the mapping's (the header is not data); the device's goes to `device_size`.
pub fn encrypted_extend_output(out: &mut serde_json::Value, mapping: &str, size: u64) {
    out["device_size"] = out["new_size"].clone();
    out["new_size"] = size.into();
    out["path"] = format!("/dev/mapper/{mapping}").into();
}

// ---------------------------------------------------------------------------------
// moor luks …
// ---------------------------------------------------------------------------------

/// Which volume a `moor luks` command acts on.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// An attached volume: the device_info JSON `moor connect` printed.
    #[arg(long, value_name = "FILE")]
    device_info: Option<PathBuf>,
    /// A volume image file (moord's filters must allow it).
    #[arg(long, value_name = "PATH")]
    image: Option<PathBuf>,
}

impl TargetArgs {
    fn backing(&self, paths: &HostPaths) -> Result<Backing> {
        if let Some(image) = &self.image {
            // moord wants a canonical path (and checks it is a regular file).
            let abs = std::fs::canonicalize(image)
                .with_context(|| format!("resolving {}", image.display()))?;
            return Ok(Backing::Image {
                path: abs.to_string_lossy().into_owned(),
            });
        }
        let Some(f) = &self.device_info else {
            bail!("pass --device-info or --image");
        };
        let info = read_json(f, "device_info")?;
        let wwid = info
            .get("scsi_wwn")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .context("device_info has no scsi_wwn: moor acts only on devices it can identify")?;
        let name = match info.pointer("/encryption/backing").and_then(|v| v.as_str()) {
            Some(b) => b.to_string(),
            None => device_name(
                paths,
                info.get("path")
                    .and_then(|v| v.as_str())
                    .context("device_info has no path")?,
            )?,
        };
        Ok(Backing::Device {
            name,
            wwid: wwid.to_string(),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum LuksCommand {
    /// Write a LUKS header on a blank volume (moord refuses anything that carries a
    /// header or a filesystem).
    Format {
        #[command(flatten)]
        target: TargetArgs,
        /// Encryption metadata JSON (provider luks or luks2, cipher, key_size).
        #[arg(long, value_name = "FILE")]
        encryption: PathBuf,
        /// The key manager's secret, or `-` for stdin.
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        #[arg(long, value_name = "TYPE", default_value = "symmetric")]
        secret_type: SecretType,
        #[command(flatten)]
        pbkdf: PbkdfArgs,
        #[command(flatten)]
        common: LuksCommon,
    },
    /// Replace the volume's secret: add a key slot for the new secret, check that
    /// it opens, then remove the old secret's slots. Safe to re-run after an
    /// interruption. Prints which slot holds what.
    Rekey {
        #[command(flatten)]
        target: TargetArgs,
        /// The current secret, or `-` for stdin.
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        #[arg(long, value_name = "TYPE", default_value = "symmetric")]
        secret_type: SecretType,
        /// The new secret (a file; not stdin when --secret-file is).
        #[arg(long, value_name = "FILE")]
        new_secret_file: PathBuf,
        /// The new secret's type (default: that of the current one).
        #[arg(long, value_name = "TYPE")]
        new_secret_type: Option<SecretType>,
        #[command(flatten)]
        pbkdf: PbkdfArgs,
        #[command(flatten)]
        common: LuksCommon,
    },
    /// Whether the volume is LUKS, its active key slots and (with --secret-file)
    /// which slot the secret opens.
    Status {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        #[arg(long, value_name = "TYPE", default_value = "symmetric")]
        secret_type: SecretType,
        #[command(flatten)]
        common: LuksCommon,
    },
}

/// Options every `moor luks` command takes (no dry run: each step depends on
/// what the previous one found on the device).
#[derive(Debug, Args)]
pub struct LuksCommon {
    /// Overall deadline, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout: u64,
    /// Read sysfs and /dev under DIR (fixture trees, containers).
    #[arg(long, value_name = "DIR", default_value = "/")]
    host_root: PathBuf,
}

impl LuksCommon {
    fn common(&self) -> Common {
        Common {
            dry_run: false,
            timeout: self.timeout,
            host_root: self.host_root.clone(),
            lock_dir: PathBuf::from("/run/moor/locks"),
            attachments_dir: PathBuf::from("/run/moor/attachments"),
            metrics_dir: None,
        }
    }
}

fn deadline(common: &LuksCommon) -> Instant {
    Instant::now() + Duration::from_secs(common.timeout)
}

pub fn run(cmd: LuksCommand, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode> {
    let events = UdevEvents;
    match cmd {
        LuksCommand::Format {
            target,
            encryption,
            secret_file,
            secret_type,
            pbkdf,
            common,
        } => {
            let paths = HostPaths::under(&common.host_root);
            let backing = target.backing(&paths)?;
            let props =
                EncryptionProps::from_metadata(&read_json(&encryption, "encryption metadata")?)?;
            if secret_file.as_os_str() == "-" && encryption.as_os_str() == "-" {
                bail!("--secret-file - and --encryption - cannot both read stdin");
            }
            let pass = Passphrase::from_secret_file(secret_type.into(), &secret_file)?;
            let s = setup(&common.common(), socket, key_file)?;
            let settings = LuksSettings {
                pbkdf: pbkdf.to_pbkdf(),
                no_format: false,
            };
            let e = encryptor(paths, &*s.privileged, &events, settings);
            let deadline = deadline(&common);
            if e.is_luks(&backing, deadline)? {
                bail!("{backing:?} is already LUKS: not formatted");
            }
            e.format(&props, &backing, &pass, deadline)?;
            println!(
                "{}",
                serde_json::json!({"formatted": true, "provider": props.provider.map(|p| p.as_str())})
            );
            Ok(ExitCode::SUCCESS)
        }
        LuksCommand::Rekey {
            target,
            secret_file,
            secret_type,
            new_secret_file,
            new_secret_type,
            pbkdf,
            common,
        } => {
            if new_secret_file.as_os_str() == "-" {
                bail!("--new-secret-file must be a file (stdin can carry only one secret)");
            }
            let paths = HostPaths::under(&common.host_root);
            let backing = target.backing(&paths)?;
            let old = Passphrase::from_secret_file(secret_type.into(), &secret_file)?;
            let new = Passphrase::from_secret_file(
                new_secret_type.unwrap_or(secret_type).into(),
                &new_secret_file,
            )?;
            let s = setup(&common.common(), socket, key_file)?;
            let settings = LuksSettings {
                pbkdf: pbkdf.to_pbkdf(),
                no_format: true,
            };
            let e = encryptor(paths, &*s.privileged, &events, settings);
            let report = e.rekey(&backing, &old, &new, deadline(&common))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        LuksCommand::Status {
            target,
            secret_file,
            secret_type,
            common,
        } => {
            let paths = HostPaths::under(&common.host_root);
            let backing = target.backing(&paths)?;
            let pass = match &secret_file {
                Some(f) => Some(Passphrase::from_secret_file(secret_type.into(), f)?),
                None => None,
            };
            let s = setup(&common.common(), socket, key_file)?;
            let e = encryptor(paths, &*s.privileged, &events, LuksSettings::default());
            let deadline = deadline(&common);
            let is_luks = e.is_luks(&backing, deadline)?;
            let mut status = serde_json::json!({"luks": is_luks});
            if is_luks {
                status["active_slots"] = serde_json::json!(e.slots(&backing, deadline)?);
                if let Some(pass) = &pass {
                    status["secret_opens_slot"] =
                        serde_json::json!(e.test_key(&backing, pass, deadline)?);
                }
            }
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(if is_luks {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
