//! `moor connect|disconnect <protocol>` and `moor connector-properties`: attach and
//! detach volumes from the `connection_info` a control plane produced; every
//! privileged step goes to moord.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use moor_connector::attachments::Registry;
use moor_connector::exec::{Daemon, DryRun, Privileged};
use moor_connector::host::HostPaths;
use moor_connector::host::udev::UdevEvents;
use moor_connector::lock::LockDir;
use moor_connector::properties::connector_properties;
use moor_connector::transport::iscsi::{
    AccessMode, DeviceInfo, IscsiConnector, IscsiError, IscsiProps, Options,
};
use moor_connector::types::IfaceName;
use moor_privhelper::client::read_key_file;

use crate::dasd_cmd::FibreChannelEckd;
use crate::luks_cmd::{
    Encryption, EncryptionArgs, HostCrypt, encrypted_extend_output, mapping_for_volume,
};
use crate::metrics_cmd::Recording;
use crate::transport_cmd::{
    self, DetachArgs, ExtendArgs, FibreChannel, Nvmeof, Transport, VolumeArgs,
};
use serde_json::Value;

/// Exit status when a detach left something behind (the outcome is still printed).
const EXIT_INCOMPLETE: u8 = 3;

#[derive(Debug, Args)]
pub struct Common {
    /// Print the typed operations moord would run instead of running them.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Overall deadline of the operation, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub(crate) timeout: u64,
    /// Read sysfs, /dev, /etc and /run under DIR (fixture trees, containers).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub(crate) host_root: PathBuf,
    /// Directory for per-target and per-volume lock files.
    #[arg(long, value_name = "DIR", default_value = "/run/moor/locks")]
    pub(crate) lock_dir: PathBuf,
    /// Directory of moor's attachment records (what was handed out, with its WWID).
    #[arg(long, value_name = "DIR", default_value = "/run/moor/attachments")]
    pub(crate) attachments_dir: PathBuf,
    /// Directory of the connector's shared metrics (`moor.prom` for node_exporter's
    /// textfile collector; default HOST_ROOT/run/moor/metrics). Nothing is recorded
    /// when it does not exist, or for a dry run.
    #[arg(long, value_name = "DIR", env = "MOOR_METRICS_DIR")]
    pub(crate) metrics_dir: Option<PathBuf>,
}

impl Common {
    /// Where this run records its metrics.
    pub(crate) fn metrics_dir(&self) -> PathBuf {
        // DEFAULT_DIR (/run/moor/metrics) under the host root.
        self.metrics_dir
            .clone()
            .unwrap_or_else(|| HostPaths::under(&self.host_root).run("moor/metrics"))
    }
}

#[derive(Debug, Args)]
pub struct IscsiArgs {
    /// connection_info JSON (the whole object or its `data`), or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    properties: PathBuf,
    /// Use dm-multipath over every path (listed, or found by sendtargets
    /// discovery). Detach finds the map by the volume's WWID either way.
    #[arg(long)]
    multipath: bool,
    /// open-iscsi interface (`default`, `iser`, or an offload iface).
    #[arg(long, value_name = "NAME", default_value = "default")]
    iface: String,
    #[command(flatten)]
    encryption: EncryptionArgs,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
pub enum ConnectCommand {
    /// Attach an iSCSI volume; prints device_info JSON.
    Iscsi(IscsiArgs),
    /// Attach an NVMe-oF (TCP/RDMA) volume; prints device_info JSON.
    Nvmeof(VolumeArgs),
    /// Attach a Fibre Channel volume (FC HBAs, FCoE); prints device_info JSON.
    FibreChannel(VolumeArgs),
    /// Attach an s390x ECKD DASD (FICON); prints device_info JSON.
    #[command(visible_alias = "fibre_channel_eckd", visible_alias = "dasd")]
    FibreChannelEckd(VolumeArgs),
}

#[derive(Debug, Subcommand)]
pub enum DisconnectCommand {
    /// Detach an iSCSI volume; prints the outcome JSON.
    Iscsi {
        #[command(flatten)]
        args: IscsiArgs,
        /// device_info JSON printed by `moor connect`, or `-` for stdin.
        #[arg(long, value_name = "FILE")]
        device_info: PathBuf,
        /// Remove devices even when flushing them fails (unwritten data is lost;
        /// the outcome says which).
        #[arg(long)]
        force: bool,
        /// Exit 0 even when something is left behind (the outcome lists it).
        #[arg(long)]
        ignore_errors: bool,
    },
    /// Detach an NVMe-oF volume; prints the outcome JSON.
    Nvmeof(DetachArgs),
    /// Detach a Fibre Channel volume; prints the outcome JSON.
    FibreChannel(DetachArgs),
    /// Detach an s390x ECKD DASD (safe offline); prints the outcome JSON.
    #[command(visible_alias = "fibre_channel_eckd", visible_alias = "dasd")]
    FibreChannelEckd(DetachArgs),
}

#[derive(Debug, Subcommand)]
pub enum ExtendCommand {
    /// Rescan every path of an attached iSCSI volume, check they agree, resize its
    /// multipath map; prints the new size.
    Iscsi {
        #[command(flatten)]
        args: IscsiArgs,
        /// device_info JSON printed by `moor connect`, or `-` for stdin.
        #[arg(long, value_name = "FILE")]
        device_info: PathBuf,
    },
    /// Rescan the controllers of an attached NVMe-oF volume, wait for the new
    /// size, check every path agrees; prints the new size.
    Nvmeof(ExtendArgs),
    /// Rescan every path of an attached Fibre Channel volume, check they agree,
    /// resize its multipath map; prints the new size.
    FibreChannel(ExtendArgs),
    /// Report an attached DASD's size (DASDs do not grow while online).
    #[command(visible_alias = "fibre_channel_eckd", visible_alias = "dasd")]
    FibreChannelEckd(ExtendArgs),
}

#[derive(Debug, Subcommand)]
pub enum PathsCommand {
    /// The /dev/disk/by-path links of the volume's paths that exist now.
    Iscsi(IscsiArgs),
    /// The block devices that carry the volume's namespace now (by identity).
    Nvmeof(VolumeArgs),
    /// The devices of the volume's visible paths (by-path names where udev made
    /// them).
    FibreChannel(VolumeArgs),
    /// The DASD's by-path link, while it is online with the expected uid.
    #[command(visible_alias = "fibre_channel_eckd", visible_alias = "dasd")]
    FibreChannelEckd(VolumeArgs),
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Read the first 4 KiB of an attached volume (through moord, identity-checked);
    /// exit 0 when the read works.
    Iscsi {
        #[command(flatten)]
        args: IscsiArgs,
        #[arg(long, value_name = "FILE")]
        device_info: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct VolumesArgs {
    /// Directory of moor's attachment records.
    #[arg(long, value_name = "DIR", default_value = "/run/moor/attachments")]
    attachments_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct PropertiesArgs {
    /// The host will attach with dm-multipath.
    #[arg(long)]
    multipath: bool,
    #[arg(long)]
    enforce_multipath: bool,
    /// The address the control plane should export volumes to.
    #[arg(long, value_name = "ADDR")]
    ip: Option<String>,
    /// Create a missing /etc/nvme/hostnqn and hostid first (through moord,
    /// create-only, from the system UUID, as an attach would), so the control
    /// plane learns the host NQN before the first NVMe-oF attach. Without it
    /// nothing on the host changes.
    #[arg(long)]
    create_nvme_identity: bool,
    #[arg(long, value_name = "DIR", default_value = "/")]
    host_root: PathBuf,
}

/// How logs (and progress reports) are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `human` when stderr is a terminal, `json` otherwise.
    #[default]
    Auto,
    /// Readable lines; on a terminal, progress of long waits as one line rewritten
    /// in place.
    Human,
    /// One JSON object per line (progress reports too, with their fields).
    Json,
}

static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// `--log-format` / `MOOR_LOG_FORMAT`, for [`init_logging`].
pub fn set_log_format(f: LogFormat) {
    let _ = LOG_FORMAT.set(f);
}

/// Logs to stderr (see [`LogFormat`]): readable on a terminal, with the progress
/// of long waits on one line rewritten in place; JSON lines otherwise. `MOOR_LOG`
/// sets the level (default `info`; progress reports are `info` events of target
/// `moor::progress`).
pub fn init_logging() {
    use moor_connector::progress::{ProgressLayer, ProgressLine, is_progress};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MOOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let format = match LOG_FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Auto if terminal => LogFormat::Human,
        LogFormat::Auto => LogFormat::Json,
        f => f,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        _ if terminal => {
            let line = ProgressLine::stderr();
            registry
                .with(ProgressLayer::new(line.clone()))
                .with(
                    tracing_subscriber::fmt::layer()
                        .without_time()
                        .with_target(false)
                        .with_writer(line)
                        .with_filter(tracing_subscriber::filter::filter_fn(|m| !is_progress(m))),
                )
                .try_init()
        }
        _ => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .without_time()
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}

pub(crate) fn read_json(path: &Path, what: &str) -> Result<Value> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .with_context(|| format!("reading {what} from stdin"))?;
        s
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading {what} {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{what} is not JSON"))
}

/// `connection_info` as Nova/Cinder pass it (`{"driver_volume_type", "data"}`) or
/// just its `data`.
pub(crate) fn connection_data(v: Value, protocol: &str) -> Result<Value> {
    match v {
        Value::Object(mut o) if o.contains_key("data") && o.contains_key("driver_volume_type") => {
            let kind = o
                .get("driver_volume_type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !kind.eq_ignore_ascii_case(protocol) {
                bail!("connection_info is for driver_volume_type {kind:?}, not {protocol}");
            }
            Ok(o.remove("data").unwrap_or(Value::Null))
        }
        other => Ok(other),
    }
}

pub(crate) struct Setup {
    pub(crate) privileged: Box<dyn Privileged>,
    pub(crate) dry: Option<std::sync::Arc<DryRun>>,
}

struct SharedDry(std::sync::Arc<DryRun>);

impl Privileged for SharedDry {
    fn call(
        &self,
        op: &'static str,
        args: Value,
        shown: &dyn std::fmt::Debug,
        timeout: Duration,
    ) -> Result<Value, moor_connector::exec::PrivError> {
        self.0.call(op, args, shown, timeout)
    }

    fn dry_run(&self) -> bool {
        true
    }
}

pub(crate) fn setup(common: &Common, socket: &Path, key_file: Option<&PathBuf>) -> Result<Setup> {
    if common.dry_run {
        let dry = std::sync::Arc::new(DryRun::new());
        return Ok(Setup {
            privileged: Box::new(SharedDry(dry.clone())),
            dry: Some(dry),
        });
    }
    let key = match key_file {
        Some(p) => {
            Some(read_key_file(p).with_context(|| format!("reading key file {}", p.display()))?)
        }
        None => None,
    };
    let daemon =
        Daemon::new(socket, key).with_reply_timeout(Duration::from_secs(common.timeout + 30));
    daemon.check()?;
    Ok(Setup {
        privileged: Box::new(daemon),
        dry: None,
    })
}

fn connector<'a>(
    args: &IscsiArgs,
    privileged: &'a dyn Privileged,
    events: &'a UdevEvents,
) -> Result<IscsiConnector<'a>> {
    let iface: IfaceName = args.iface.parse()?;
    Ok(IscsiConnector {
        paths: HostPaths::under(&args.common.host_root),
        privileged,
        events,
        locks: LockDir::new(&args.common.lock_dir),
        registry: Registry::new(&args.common.attachments_dir),
        options: Options {
            iface,
            timeout: Duration::from_secs(args.common.timeout),
            multipath: args.multipath,
        },
    })
}

pub(crate) fn print_plan(dry: &DryRun, stopped: Option<&str>) {
    let plan = serde_json::json!({
        "dry_run": true,
        "operations": dry.planned(),
        "stopped": stopped,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&plan).unwrap_or_default()
    );
}

fn props_for(args: &IscsiArgs) -> Result<IscsiProps> {
    let data = connection_data(
        read_json(&args.properties, "connection properties")?,
        "iscsi",
    )?;
    Ok(IscsiProps::from_connection_info(&data)?)
}

fn stdin_user(args: &IscsiArgs) -> Option<&'static str> {
    (args.properties.as_os_str() == "-").then_some("--properties -")
}

/// The volume's mapping name (`crypt-<volume_id>`).
fn mapping_for(props: &IscsiProps) -> Result<String> {
    mapping_for_volume(props.volume_id.as_deref())
}

impl ConnectCommand {
    fn target(&self) -> (&'static str, &Common) {
        match self {
            ConnectCommand::Iscsi(a) => ("iscsi", &a.common),
            ConnectCommand::Nvmeof(a) => (Nvmeof::PROTOCOL, a.common()),
            ConnectCommand::FibreChannel(a) => (FibreChannel::PROTOCOL, a.common()),
            ConnectCommand::FibreChannelEckd(a) => (FibreChannelEckd::PROTOCOL, a.common()),
        }
    }
}

impl DisconnectCommand {
    fn target(&self) -> (&'static str, &Common) {
        match self {
            DisconnectCommand::Iscsi { args, .. } => ("iscsi", &args.common),
            DisconnectCommand::Nvmeof(a) => (Nvmeof::PROTOCOL, a.common()),
            DisconnectCommand::FibreChannel(a) => (FibreChannel::PROTOCOL, a.common()),
            DisconnectCommand::FibreChannelEckd(a) => (FibreChannelEckd::PROTOCOL, a.common()),
        }
    }
}

impl ExtendCommand {
    fn target(&self) -> (&'static str, &Common) {
        match self {
            ExtendCommand::Iscsi { args, .. } => ("iscsi", &args.common),
            ExtendCommand::Nvmeof(a) => (Nvmeof::PROTOCOL, a.common()),
            ExtendCommand::FibreChannel(a) => (FibreChannel::PROTOCOL, a.common()),
            ExtendCommand::FibreChannelEckd(a) => (FibreChannelEckd::PROTOCOL, a.common()),
        }
    }
}

/// `moor connect <protocol>`, recorded in the connector's metrics.
pub fn connect(cmd: ConnectCommand, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode> {
    let (protocol, common) = cmd.target();
    let rec = Recording::start(protocol, "connect", common);
    rec.finish(connect_volume(cmd, socket, key_file))
}

fn connect_volume(
    cmd: ConnectCommand,
    socket: &Path,
    key_file: Option<&PathBuf>,
) -> Result<ExitCode> {
    let args = match cmd {
        ConnectCommand::Iscsi(args) => args,
        ConnectCommand::Nvmeof(args) => {
            return transport_cmd::connect::<Nvmeof>(args, socket, key_file);
        }
        ConnectCommand::FibreChannel(args) => {
            return transport_cmd::connect::<FibreChannel>(args, socket, key_file);
        }
        ConnectCommand::FibreChannelEckd(args) => {
            return transport_cmd::connect::<FibreChannelEckd>(args, socket, key_file);
        }
    };
    let props = props_for(&args)?;
    let enc = args.encryption.load(stdin_user(&args))?;
    let mapping = match &enc {
        Some(e) => {
            e.passphrase("attaching an encrypted volume")?;
            Some(mapping_for(&props)?)
        }
        None => {
            if props.encrypted {
                tracing::warn!(
                    "connection_info says encrypted but no --encryption was given: the device is returned as it is"
                );
            }
            None
        }
    };
    let s = setup(&args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector(&args, &*s.privileged, &events)?;
    let result = c.connect(&props);
    if let Some(dry) = &s.dry {
        let stopped = match result {
            Err(IscsiError::DryRun(why)) => Some(why),
            Err(e) => return Err(anyhow::Error::new(e).context("dry run")),
            Ok(_) => None,
        };
        print_plan(dry, stopped.as_deref());
        return Ok(ExitCode::SUCCESS);
    }
    let mut info: DeviceInfo = result?;
    if let (Some(enc), Some(mapping)) = (&enc, mapping)
        && let Err(e) = open_encrypted(&c, &props, enc, &mapping, &mut info)
    {
        // Undo the transport attach: nothing of a failed attach stays.
        if let Err(undo) = c.disconnect(&props, &info, false, false) {
            return Err(e.context(format!("undoing the attach also failed: {undo}")));
        }
        return Err(e.context("the volume was detached again"));
    }
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(ExitCode::SUCCESS)
}

fn host_crypt<'a>(c: &IscsiConnector<'a>) -> HostCrypt<'a> {
    HostCrypt {
        paths: c.paths.clone(),
        privileged: c.privileged,
        timeout: c.options.timeout,
    }
}

/// Opens the decrypted mapping on the attached device and points `info.path` at it.
fn open_encrypted(
    c: &IscsiConnector,
    props: &IscsiProps,
    enc: &Encryption,
    mapping: &str,
    info: &mut DeviceInfo,
) -> Result<()> {
    let (path, record) = host_crypt(c).open(
        enc,
        mapping,
        &info.path,
        info.scsi_wwn.clone(),
        props.access_mode == AccessMode::ReadOnly,
    )?;
    info.path = path;
    info.encryption = Some(record);
    Ok(())
}

/// Closes the volume's decrypted mapping (when open) and gives back the
/// transport's view of `info`. The mapping is found from `info.encryption`, or
/// from the volume id when `--encryption` names a host-decrypted provider.
fn close_encrypted(
    c: &IscsiConnector,
    props: &IscsiProps,
    enc: Option<&Encryption>,
    mut info: DeviceInfo,
) -> Result<DeviceInfo> {
    let recorded = info.encryption.take();
    let by_name = match (&recorded, enc) {
        (None, Some(_)) => Some(mapping_for(props)?),
        _ => None,
    };
    if let Some(ev) = &recorded {
        info.path = ev.device_path.clone();
    }
    host_crypt(c).close(recorded.as_ref(), by_name, || Ok(info.scsi_wwn.clone()))?;
    Ok(info)
}

/// `moor disconnect <protocol>`, recorded in the connector's metrics.
pub fn disconnect(
    cmd: DisconnectCommand,
    socket: &Path,
    key_file: Option<&PathBuf>,
) -> Result<ExitCode> {
    let (protocol, common) = cmd.target();
    let rec = Recording::start(protocol, "disconnect", common);
    rec.finish(disconnect_volume(cmd, socket, key_file))
}

fn disconnect_volume(
    cmd: DisconnectCommand,
    socket: &Path,
    key_file: Option<&PathBuf>,
) -> Result<ExitCode> {
    let (args, device_info, force, ignore_errors) = match cmd {
        DisconnectCommand::Iscsi {
            args,
            device_info,
            force,
            ignore_errors,
        } => (args, device_info, force, ignore_errors),
        DisconnectCommand::Nvmeof(a) => {
            return transport_cmd::disconnect::<Nvmeof>(a, socket, key_file);
        }
        DisconnectCommand::FibreChannel(a) => {
            return transport_cmd::disconnect::<FibreChannel>(a, socket, key_file);
        }
        DisconnectCommand::FibreChannelEckd(a) => {
            return transport_cmd::disconnect::<FibreChannelEckd>(a, socket, key_file);
        }
    };
    let props = props_for(&args)?;
    let info = device_info_from(&device_info)?;
    let enc = args.encryption.load(stdin_user(&args))?;
    let s = setup(&args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector(&args, &*s.privileged, &events)?;
    let info = close_encrypted(&c, &props, enc.as_ref(), info)?;
    let result = c.disconnect(&props, &info, force, ignore_errors);
    if let Some(dry) = &s.dry {
        result.context("dry run")?;
        print_plan(dry, None);
        return Ok(ExitCode::SUCCESS);
    }
    match result {
        Ok(outcome) => print_outcome(&outcome, None),
        Err(IscsiError::Incomplete(outcome)) => print_outcome(&outcome, Some(outcome.summary())),
        Err(e) => Err(e.into()),
    }
}

/// Prints a detach outcome as JSON; with `left` (what is left, one line) also on
/// stderr, and exit status 3.
pub(crate) fn print_outcome<O: serde::Serialize>(
    outcome: &O,
    left: Option<String>,
) -> Result<ExitCode> {
    if let Ok(v) = serde_json::to_value(outcome)
        && let Some(status) = v.get("status").and_then(Value::as_str)
    {
        crate::metrics_cmd::note_detach_status(status);
    }
    println!("{}", serde_json::to_string_pretty(outcome)?);
    Ok(match left {
        Some(summary) => {
            eprintln!("moor: detach incomplete: {summary}");
            ExitCode::from(EXIT_INCOMPLETE)
        }
        None => ExitCode::SUCCESS,
    })
}

pub fn properties(
    args: PropertiesArgs,
    socket: &Path,
    key_file: Option<&PathBuf>,
) -> Result<ExitCode> {
    // moord is asked only for what this user may not read (the initiator name is
    // root-only on Debian); the client connects on first use.
    let key = match key_file {
        Some(p) => {
            Some(read_key_file(p).with_context(|| format!("reading key file {}", p.display()))?)
        }
        None => None,
    };
    let daemon = Daemon::new(socket, key).with_reply_timeout(Duration::from_secs(30));
    let paths = HostPaths::under(&args.host_root);
    if args.create_nvme_identity {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        moor_connector::transport::nvmeof::hostid::ensure_identity(&paths, &daemon, deadline)
            .context("creating the NVMe host identity")?;
    }
    let p = connector_properties(
        &paths,
        args.ip,
        args.multipath,
        args.enforce_multipath,
        Some(&daemon),
    )?;
    println!("{}", serde_json::to_string_pretty(&p)?);
    Ok(ExitCode::SUCCESS)
}

fn device_info_from(path: &Path) -> Result<DeviceInfo> {
    serde_json::from_value(read_json(path, "device_info")?)
        .context("device_info does not have the shape moor connect prints")
}

/// `moor extend <protocol>`, recorded in the connector's metrics.
pub fn extend(cmd: ExtendCommand, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode> {
    let (protocol, common) = cmd.target();
    let rec = Recording::start(protocol, "extend", common);
    rec.finish(extend_volume(cmd, socket, key_file))
}

fn extend_volume(
    cmd: ExtendCommand,
    socket: &Path,
    key_file: Option<&PathBuf>,
) -> Result<ExitCode> {
    let (args, device_info) = match cmd {
        ExtendCommand::Iscsi { args, device_info } => (args, device_info),
        ExtendCommand::Nvmeof(a) => return transport_cmd::extend::<Nvmeof>(a, socket, key_file),
        ExtendCommand::FibreChannel(a) => {
            return transport_cmd::extend::<FibreChannel>(a, socket, key_file);
        }
        ExtendCommand::FibreChannelEckd(a) => {
            return transport_cmd::extend::<FibreChannelEckd>(a, socket, key_file);
        }
    };
    let props = props_for(&args)?;
    let mut info = device_info_from(&device_info)?;
    let enc = args.encryption.load(stdin_user(&args))?;
    let encrypted = info.encryption.take();
    if let Some(ev) = &encrypted {
        info.path = ev.device_path.clone();
        if enc.is_none() {
            bail!(
                "{} is encrypted: pass --encryption and --secret-file to resize its mapping",
                ev.mapping
            );
        }
    }
    let s = setup(&args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector(&args, &*s.privileged, &events)?;
    let result = c.extend(&props, &info);
    if let Some(dry) = &s.dry {
        result.context("dry run")?;
        print_plan(dry, None);
        return Ok(ExitCode::SUCCESS);
    }
    let extended = result?;
    let mut out = serde_json::to_value(&extended)?;
    if let (Some(ev), Some(enc)) = (&encrypted, &enc) {
        let size = host_crypt(&c).resize(enc, ev, &info.scsi_wwn)?;
        encrypted_extend_output(&mut out, &ev.mapping, size);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

pub fn paths(cmd: PathsCommand) -> Result<ExitCode> {
    let args = match cmd {
        PathsCommand::Iscsi(args) => args,
        PathsCommand::Nvmeof(args) => return transport_cmd::paths::<Nvmeof>(args),
        PathsCommand::FibreChannel(args) => return transport_cmd::paths::<FibreChannel>(args),
        PathsCommand::FibreChannelEckd(args) => {
            return transport_cmd::paths::<FibreChannelEckd>(args);
        }
    };
    let props = props_for(&args)?;
    let dry = DryRun::new();
    let events = UdevEvents;
    let c = connector(&args, &dry, &events)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&c.volume_paths(&props)?)?
    );
    Ok(ExitCode::SUCCESS)
}

pub fn check(cmd: CheckCommand, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode> {
    let CheckCommand::Iscsi { args, device_info } = cmd;
    let info = device_info_from(&device_info)?;
    let s = setup(&args.common, socket, key_file)?;
    let events = UdevEvents;
    let c = connector(&args, &*s.privileged, &events)?;
    let ok = c.check_valid_device(&info)?;
    println!("{}", serde_json::json!({"path": info.path, "valid": ok}));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn volumes(args: VolumesArgs) -> Result<ExitCode> {
    let all = Registry::new(&args.attachments_dir).all();
    // `moor volumes | grep -q …` closes the pipe early: not an error.
    let text = serde_json::to_string_pretty(&all)?;
    if let Err(e) = writeln!(std::io::stdout(), "{text}")
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    Ok(ExitCode::SUCCESS)
}
