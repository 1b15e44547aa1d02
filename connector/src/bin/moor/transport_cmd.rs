//! `moor connect|disconnect|extend|paths <protocol>` for the transports whose
//! commands have the same shape (NVMe-oF, Fibre Channel): the connection_info in,
//! device_info or an outcome out, every privileged step through moord. Each
//! transport says how to parse its properties and build its connector
//! ([`Transport`]); the commands are written once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use moor_connector::attachments::Registry;
use moor_connector::encryption::EncryptedVolume;
use moor_connector::exec::{DryRun, Privileged};
use moor_connector::host::HostPaths;
use moor_connector::host::udev::UdevEvents;
use moor_connector::lock::LockDir;
use moor_connector::transport::fc::FcError;
use moor_connector::transport::nvmeof::NvmeofError;
use moor_connector::transport::{Extended, fc, nvmeof};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::luks_cmd::{
    Encryption, EncryptionArgs, HostCrypt, encrypted_extend_output, mapping_for_volume,
};
use crate::volume_cmd::{Common, connection_data, print_outcome, print_plan, read_json, setup};

/// Arguments every command of these transports takes.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    /// connection_info JSON (the whole object or its `data`), or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    properties: PathBuf,
    /// Use every path: NVMe-oF connects every portal and returns the native
    /// multipath head (nvme_core multipath=Y); Fibre Channel scans every visible
    /// path and returns the dm-multipath map. Without it one path is enough.
    #[arg(long)]
    multipath: bool,
    #[command(flatten)]
    encryption: EncryptionArgs,
    #[command(flatten)]
    common: Common,
}

impl VolumeArgs {
    pub(crate) fn common(&self) -> &Common {
        &self.common
    }
}

impl DetachArgs {
    pub(crate) fn common(&self) -> &Common {
        &self.args.common
    }
}

impl ExtendArgs {
    pub(crate) fn common(&self) -> &Common {
        &self.args.common
    }
}

/// `disconnect` arguments.
#[derive(Debug, Args)]
pub struct DetachArgs {
    #[command(flatten)]
    args: VolumeArgs,
    /// device_info JSON printed by `moor connect`, or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    device_info: PathBuf,
    /// Detach even when a flush fails (or, NVMe-oF, no path is live): unwritten
    /// data is lost; the outcome says where.
    #[arg(long)]
    force: bool,
    /// Exit 0 even when something is left behind (the outcome lists it).
    #[arg(long)]
    ignore_errors: bool,
}

/// `extend` arguments.
#[derive(Debug, Args)]
pub struct ExtendArgs {
    #[command(flatten)]
    args: VolumeArgs,
    /// device_info JSON printed by `moor connect`, or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    device_info: PathBuf,
}

/// What the generic commands need from a transport: its properties, its
/// connector and how its results and errors look.
pub trait Transport {
    /// `driver_volume_type`.
    const PROTOCOL: &'static str;
    type Props;
    type Info: Serialize + DeserializeOwned;
    type Outcome: Serialize;
    type Error: std::error::Error + Send + Sync + 'static;
    type Connector<'a>;

    fn build<'a>(
        paths: HostPaths,
        privileged: &'a dyn Privileged,
        events: &'a UdevEvents,
        locks: LockDir,
        registry: Registry,
        timeout: Duration,
        multipath: bool,
    ) -> Self::Connector<'a>;
    fn parse(data: &Value) -> Result<Self::Props>;
    /// Whether the connection info asks for host-side encryption.
    fn encrypted(props: &Self::Props) -> bool;
    /// `volume_id` (a decrypted mapping is named after it).
    fn volume_id(props: &Self::Props) -> Option<&str>;
    /// `access_mode` is `ro`.
    fn read_only(props: &Self::Props) -> bool;
    /// `device_info.path`.
    fn path(info: &Self::Info) -> &str;
    fn set_path(info: &mut Self::Info, path: String);
    /// The identity moord re-checks before every LUKS step on the device; `None`
    /// when it has none moord can check there (the host then does not decrypt).
    fn wwid(info: &Self::Info) -> Option<String>;
    fn connect(c: &Self::Connector<'_>, props: &Self::Props) -> Result<Self::Info, Self::Error>;
    fn disconnect(
        c: &Self::Connector<'_>,
        props: &Self::Props,
        info: &Self::Info,
        force: bool,
        ignore_errors: bool,
    ) -> Result<Self::Outcome, Self::Error>;
    fn extend(
        c: &Self::Connector<'_>,
        props: &Self::Props,
        info: &Self::Info,
    ) -> Result<Extended, Self::Error>;
    fn paths(c: &Self::Connector<'_>, props: &Self::Props) -> Result<Vec<String>, Self::Error>;
    /// A dry run's planned stop, if `e` is one.
    fn dry_stop(e: &Self::Error) -> Option<&str>;
    /// A detach that left something: its outcome and a one-line summary.
    fn incomplete(e: Self::Error) -> Result<(Self::Outcome, String), Self::Error>;
}

/// The [`Transport`] methods every transport implements the same way: its
/// connector's `connect`/`disconnect`/`extend`/`volume_paths`, its properties'
/// `from_connection_info` and `encrypted`, and its error's `DryRun` and
/// `Incomplete` variants (`$err`, in scope where the macro is used).
macro_rules! transport_common {
    ($err:ident) => {
        fn parse(data: &serde_json::Value) -> anyhow::Result<Self::Props> {
            Ok(<Self::Props>::from_connection_info(data)?)
        }
        fn encrypted(props: &Self::Props) -> bool {
            props.encrypted
        }
        fn volume_id(props: &Self::Props) -> Option<&str> {
            props.volume_id.as_deref()
        }
        fn read_only(props: &Self::Props) -> bool {
            props.access_mode == moor_connector::transport::AccessMode::ReadOnly
        }
        fn path(info: &Self::Info) -> &str {
            &info.path
        }
        fn set_path(info: &mut Self::Info, path: String) {
            info.path = path;
        }
        fn connect(
            c: &Self::Connector<'_>,
            props: &Self::Props,
        ) -> Result<Self::Info, Self::Error> {
            c.connect(props)
        }
        fn disconnect(
            c: &Self::Connector<'_>,
            props: &Self::Props,
            info: &Self::Info,
            force: bool,
            ignore_errors: bool,
        ) -> Result<Self::Outcome, Self::Error> {
            c.disconnect(props, info, force, ignore_errors)
        }
        fn extend(
            c: &Self::Connector<'_>,
            props: &Self::Props,
            info: &Self::Info,
        ) -> Result<moor_connector::transport::Extended, Self::Error> {
            c.extend(props, info)
        }
        fn paths(c: &Self::Connector<'_>, props: &Self::Props) -> Result<Vec<String>, Self::Error> {
            c.volume_paths(props)
        }
        fn dry_stop(e: &Self::Error) -> Option<&str> {
            match e {
                $err::DryRun(why) => Some(why),
                _ => None,
            }
        }
        fn incomplete(e: Self::Error) -> Result<(Self::Outcome, String), Self::Error> {
            match e {
                $err::Incomplete(o) => {
                    let summary = o.summary();
                    Ok((*o, summary))
                }
                other => Err(other),
            }
        }
    };
}
pub(crate) use transport_common;

/// NVMe-oF.
pub struct Nvmeof;
/// Fibre Channel.
pub struct FibreChannel;

fn connector<'a, T: Transport>(
    args: &VolumeArgs,
    privileged: &'a dyn Privileged,
    events: &'a UdevEvents,
) -> T::Connector<'a> {
    T::build(
        HostPaths::under(&args.common.host_root),
        privileged,
        events,
        LockDir::new(&args.common.lock_dir),
        Registry::new(&args.common.attachments_dir),
        Duration::from_secs(args.common.timeout),
        args.multipath,
    )
}

fn props_for<T: Transport>(args: &VolumeArgs) -> Result<T::Props> {
    let data = connection_data(
        read_json(&args.properties, "connection properties")?,
        T::PROTOCOL,
    )?;
    T::parse(&data)
}

fn device_info_from<T: Transport>(path: &Path) -> Result<Attached<T::Info>> {
    serde_json::from_value(read_json(path, "device_info")?).with_context(|| {
        format!(
            "device_info does not have the shape `moor connect {}` prints",
            T::PROTOCOL
        )
    })
}

/// `moor connect <protocol>`.
pub fn connect<T>(args: VolumeArgs, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode>
where
    T: Transport,
{
    let props = props_for::<T>(&args)?;
    let enc = args.encryption.load(stdin_user(&args))?;
    let mapping = match &enc {
        Some(e) => {
            e.passphrase("attaching an encrypted volume")?;
            Some(mapping_for::<T>(&props)?)
        }
        None => {
            if T::encrypted(&props) {
                tracing::warn!(
                    "connection_info says encrypted but no --encryption was given: the device is returned as it is"
                );
            }
            None
        }
    };
    let s = setup(&args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector::<T>(&args, &*s.privileged, &events);
    let result = T::connect(&c, &props);
    if let Some(dry) = &s.dry {
        let stopped = match result {
            Err(e) => match T::dry_stop(&e) {
                Some(why) => Some(why.to_string()),
                None => return Err(anyhow::Error::new(e).context("dry run")),
            },
            Ok(_) => None,
        };
        print_plan(dry, stopped.as_deref());
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = Attached {
        info: result?,
        encryption: None,
    };
    if let (Some(enc), Some(mapping)) = (&enc, mapping)
        && let Err(e) = open_encrypted::<T>(
            &args.common,
            &*s.privileged,
            &props,
            enc,
            &mapping,
            &mut out,
        )
    {
        // Undo the transport attach: nothing of a failed attach stays.
        if let Err(undo) = T::disconnect(&c, &props, &out.info, false, false) {
            return Err(e.context(format!("undoing the attach also failed: {undo}")));
        }
        return Err(e.context("the volume was detached again"));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// A transport's device_info with the decrypted mapping moor opened on it: the
/// same `encryption` member iSCSI's device_info has, `path` then being the mapping.
#[derive(Serialize, Deserialize)]
struct Attached<I> {
    #[serde(flatten)]
    info: I,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption: Option<EncryptedVolume>,
}

fn stdin_user(args: &VolumeArgs) -> Option<&'static str> {
    (args.properties.as_os_str() == "-").then_some("--properties -")
}

/// The volume's mapping name (`crypt-<volume_id>`).
fn mapping_for<T: Transport>(props: &T::Props) -> Result<String> {
    mapping_for_volume(T::volume_id(props))
}

fn wwid_for_luks<T: Transport>(info: &T::Info) -> Result<String> {
    T::wwid(info).with_context(|| {
        format!(
            "moor decrypts {} volumes only on a device with an identity moord can re-check (a namespace, SCSI disk or multipath map, not a replicated array or a DASD)",
            T::PROTOCOL
        )
    })
}

fn host_crypt<'a>(common: &Common, privileged: &'a dyn Privileged) -> HostCrypt<'a> {
    HostCrypt {
        paths: HostPaths::under(&common.host_root),
        privileged,
        timeout: Duration::from_secs(common.timeout),
    }
}

/// Opens the decrypted mapping on the attached device and points `path` at it.
fn open_encrypted<T: Transport>(
    common: &Common,
    privileged: &dyn Privileged,
    props: &T::Props,
    enc: &Encryption,
    mapping: &str,
    out: &mut Attached<T::Info>,
) -> Result<()> {
    let (path, record) = host_crypt(common, privileged).open(
        enc,
        mapping,
        T::path(&out.info),
        wwid_for_luks::<T>(&out.info)?,
        T::read_only(props),
    )?;
    T::set_path(&mut out.info, path);
    out.encryption = Some(record);
    Ok(())
}

/// Closes the volume's decrypted mapping (when open) and gives back the
/// transport's device_info.
fn close_encrypted<T: Transport>(
    common: &Common,
    privileged: &dyn Privileged,
    props: &T::Props,
    enc: Option<&Encryption>,
    attached: Attached<T::Info>,
) -> Result<T::Info> {
    let Attached {
        mut info,
        encryption,
    } = attached;
    let by_name = match (&encryption, enc) {
        (None, Some(_)) => Some(mapping_for::<T>(props)?),
        _ => None,
    };
    if let Some(ev) = &encryption {
        T::set_path(&mut info, ev.device_path.clone());
    }
    host_crypt(common, privileged)
        .close(encryption.as_ref(), by_name, || wwid_for_luks::<T>(&info))?;
    Ok(info)
}

/// `moor disconnect <protocol>`.
pub fn disconnect<T>(a: DetachArgs, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode>
where
    T: Transport,
{
    let props = props_for::<T>(&a.args)?;
    let attached = device_info_from::<T>(&a.device_info)?;
    let enc = a.args.encryption.load(stdin_user(&a.args))?;
    let s = setup(&a.args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector::<T>(&a.args, &*s.privileged, &events);
    let info = close_encrypted::<T>(
        &a.args.common,
        &*s.privileged,
        &props,
        enc.as_ref(),
        attached,
    )?;
    let result = T::disconnect(&c, &props, &info, a.force, a.ignore_errors);
    if let Some(dry) = &s.dry {
        result.context("dry run")?;
        print_plan(dry, None);
        return Ok(ExitCode::SUCCESS);
    }
    match result {
        Ok(outcome) => print_outcome(&outcome, None),
        Err(e) => {
            let (outcome, summary) = T::incomplete(e)?;
            print_outcome(&outcome, Some(summary))
        }
    }
}

/// `moor extend <protocol>`.
pub fn extend<T>(a: ExtendArgs, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode>
where
    T: Transport,
{
    let props = props_for::<T>(&a.args)?;
    let Attached {
        mut info,
        encryption,
    } = device_info_from::<T>(&a.device_info)?;
    let enc = a.args.encryption.load(stdin_user(&a.args))?;
    if let Some(ev) = &encryption {
        T::set_path(&mut info, ev.device_path.clone());
        if enc.is_none() {
            anyhow::bail!(
                "{} is encrypted: pass --encryption and --secret-file to resize its mapping",
                ev.mapping
            );
        }
    }
    let s = setup(&a.args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector::<T>(&a.args, &*s.privileged, &events);
    let result = T::extend(&c, &props, &info);
    if let Some(dry) = &s.dry {
        result.context("dry run")?;
        print_plan(dry, None);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = serde_json::to_value(result?)?;
    if let (Some(ev), Some(enc)) = (&encryption, &enc) {
        let size = host_crypt(&a.args.common, &*s.privileged).resize(
            enc,
            ev,
            &wwid_for_luks::<T>(&info)?,
        )?;
        encrypted_extend_output(&mut out, &ev.mapping, size);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// `moor paths <protocol>`: read-only, nothing goes to moord.
pub fn paths<T>(args: VolumeArgs) -> Result<ExitCode>
where
    T: Transport,
{
    let props = props_for::<T>(&args)?;
    let dry = DryRun::new();
    let events = UdevEvents;
    let c = connector::<T>(&args, &dry, &events);
    println!("{}", serde_json::to_string_pretty(&T::paths(&c, &props)?)?);
    Ok(ExitCode::SUCCESS)
}

impl Transport for Nvmeof {
    const PROTOCOL: &'static str = "nvmeof";
    type Props = nvmeof::NvmeofProps;
    type Info = nvmeof::DeviceInfo;
    type Outcome = nvmeof::DetachOutcome;
    type Connector<'a> = nvmeof::NvmeofConnector<'a>;
    type Error = nvmeof::NvmeofError;

    fn build<'a>(
        paths: HostPaths,
        privileged: &'a dyn Privileged,
        events: &'a UdevEvents,
        locks: LockDir,
        registry: Registry,
        timeout: Duration,
        multipath: bool,
    ) -> Self::Connector<'a> {
        nvmeof::NvmeofConnector {
            paths,
            privileged,
            events,
            locks,
            registry,
            options: nvmeof::Options { timeout, multipath },
        }
    }
    fn wwid(info: &Self::Info) -> Option<String> {
        // A replicated volume's array has no WWID moord could check.
        info.wwid.clone().filter(|_| info.raid.is_none())
    }
    transport_common!(NvmeofError);
}

impl Transport for FibreChannel {
    const PROTOCOL: &'static str = "fibre_channel";
    type Props = fc::FcProps;
    type Info = fc::DeviceInfo;
    type Outcome = fc::DetachOutcome;
    type Connector<'a> = fc::FcConnector<'a>;
    type Error = fc::FcError;

    fn build<'a>(
        paths: HostPaths,
        privileged: &'a dyn Privileged,
        events: &'a UdevEvents,
        locks: LockDir,
        registry: Registry,
        timeout: Duration,
        multipath: bool,
    ) -> Self::Connector<'a> {
        fc::FcConnector {
            paths,
            privileged,
            events,
            locks,
            registry,
            options: fc::Options { timeout, multipath },
        }
    }
    fn wwid(info: &Self::Info) -> Option<String> {
        Some(info.scsi_wwn.clone()).filter(|w| !w.is_empty())
    }
    transport_common!(FcError);
}
