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
use moor_connector::exec::{DryRun, Privileged};
use moor_connector::host::HostPaths;
use moor_connector::host::udev::UdevEvents;
use moor_connector::lock::LockDir;
use moor_connector::transport::fc::FcError;
use moor_connector::transport::nvmeof::NvmeofError;
use moor_connector::transport::{Extended, fc, nvmeof};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

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

fn device_info_from<T: Transport>(path: &Path) -> Result<T::Info> {
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
    if T::encrypted(&props) {
        tracing::warn!(
            "connection_info says encrypted; moor does not open encrypted {} volumes yet: the device is returned as it is",
            T::PROTOCOL
        );
    }
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
    println!("{}", serde_json::to_string_pretty(&result?)?);
    Ok(ExitCode::SUCCESS)
}

/// `moor disconnect <protocol>`.
pub fn disconnect<T>(a: DetachArgs, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode>
where
    T: Transport,
{
    let props = props_for::<T>(&a.args)?;
    let info = device_info_from::<T>(&a.device_info)?;
    let s = setup(&a.args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector::<T>(&a.args, &*s.privileged, &events);
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
    let info = device_info_from::<T>(&a.device_info)?;
    let s = setup(&a.args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector::<T>(&a.args, &*s.privileged, &events);
    let result = T::extend(&c, &props, &info);
    if let Some(dry) = &s.dry {
        result.context("dry run")?;
        print_plan(dry, None);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", serde_json::to_string_pretty(&result?)?);
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
    transport_common!(FcError);
}
