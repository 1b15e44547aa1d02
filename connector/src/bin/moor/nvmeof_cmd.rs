//! `moor connect|disconnect|extend|paths nvmeof`: NVMe-oF volumes from the
//! `connection_info` a control plane produced (os-brick's four shapes); every
//! privileged step goes to moord.

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
use moor_connector::transport::nvmeof::{
    DeviceInfo, NvmeofConnector, NvmeofError, NvmeofProps, Options,
};

use crate::volume_cmd::{Common, connection_data, print_outcome, print_plan, read_json, setup};

#[derive(Debug, Args)]
pub struct NvmeofArgs {
    /// connection_info JSON (the whole object or its `data`), or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    properties: PathBuf,
    /// Connect every portal and return the native multipath head (needs
    /// nvme_core multipath=Y). Without it one live portal is enough.
    #[arg(long)]
    multipath: bool,
    #[command(flatten)]
    common: Common,
}

/// `disconnect nvmeof` arguments.
#[derive(Debug, Args)]
pub struct NvmeofDetachArgs {
    #[command(flatten)]
    args: NvmeofArgs,
    /// device_info JSON printed by `moor connect`, or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    device_info: PathBuf,
    /// Detach even when the flush fails or no path is live (unwritten data is
    /// lost; the outcome says which namespaces).
    #[arg(long)]
    force: bool,
    /// Exit 0 even when something is left behind (the outcome lists it).
    #[arg(long)]
    ignore_errors: bool,
}

/// `extend nvmeof` arguments.
#[derive(Debug, Args)]
pub struct NvmeofExtendArgs {
    #[command(flatten)]
    args: NvmeofArgs,
    /// device_info JSON printed by `moor connect`, or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    device_info: PathBuf,
}

fn connector<'a>(
    args: &NvmeofArgs,
    privileged: &'a dyn Privileged,
    events: &'a UdevEvents,
) -> NvmeofConnector<'a> {
    NvmeofConnector {
        paths: HostPaths::under(&args.common.host_root),
        privileged,
        events,
        locks: LockDir::new(&args.common.lock_dir),
        registry: Registry::new(&args.common.attachments_dir),
        options: Options {
            timeout: Duration::from_secs(args.common.timeout),
            multipath: args.multipath,
        },
    }
}

fn props_for(args: &NvmeofArgs) -> Result<NvmeofProps> {
    let data = connection_data(
        read_json(&args.properties, "connection properties")?,
        "nvmeof",
    )?;
    Ok(NvmeofProps::from_connection_info(&data)?)
}

fn device_info_from(path: &Path) -> Result<DeviceInfo> {
    serde_json::from_value(read_json(path, "device_info")?)
        .context("device_info does not have the shape `moor connect nvmeof` prints")
}

pub fn connect(args: NvmeofArgs, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode> {
    let props = props_for(&args)?;
    if props.encrypted {
        tracing::warn!(
            "connection_info says encrypted; moor does not open encrypted NVMe-oF volumes yet: the device is returned as it is"
        );
    }
    let s = setup(&args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector(&args, &*s.privileged, &events);
    let result = c.connect(&props);
    if let Some(dry) = &s.dry {
        let stopped = match result {
            Err(NvmeofError::DryRun(why)) => Some(why),
            Err(e) => return Err(anyhow::Error::new(e).context("dry run")),
            Ok(_) => None,
        };
        print_plan(dry, stopped.as_deref());
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", serde_json::to_string_pretty(&result?)?);
    Ok(ExitCode::SUCCESS)
}

pub fn disconnect(
    a: NvmeofDetachArgs,
    socket: &Path,
    key_file: Option<&PathBuf>,
) -> Result<ExitCode> {
    let props = props_for(&a.args)?;
    let info = device_info_from(&a.device_info)?;
    let s = setup(&a.args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector(&a.args, &*s.privileged, &events);
    let result = c.disconnect(&props, &info, a.force, a.ignore_errors);
    if let Some(dry) = &s.dry {
        result.context("dry run")?;
        print_plan(dry, None);
        return Ok(ExitCode::SUCCESS);
    }
    match result {
        Ok(outcome) => print_outcome(&outcome, None),
        Err(NvmeofError::Incomplete(outcome)) => print_outcome(&outcome, Some(outcome.summary())),
        Err(e) => Err(e.into()),
    }
}

pub fn extend(a: NvmeofExtendArgs, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode> {
    let props = props_for(&a.args)?;
    let info = device_info_from(&a.device_info)?;
    let s = setup(&a.args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector(&a.args, &*s.privileged, &events);
    let result = c.extend(&props, &info);
    if let Some(dry) = &s.dry {
        result.context("dry run")?;
        print_plan(dry, None);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", serde_json::to_string_pretty(&result?)?);
    Ok(ExitCode::SUCCESS)
}

pub fn paths(args: NvmeofArgs) -> Result<ExitCode> {
    let props = props_for(&args)?;
    let dry = DryRun::new();
    let events = UdevEvents;
    let c = connector(&args, &dry, &events);
    println!(
        "{}",
        serde_json::to_string_pretty(&c.volume_paths(&props)?)?
    );
    Ok(ExitCode::SUCCESS)
}
